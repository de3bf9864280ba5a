//! Tables drawn with borders (`table` in ASCII, `box` in Unicode), fitted
//! to a width when they go to a terminal — DuckDB's "duckbox" as the model.
//!
//! Fitting, in order: a table that fits is drawn whole; otherwise every
//! column is given a share of the width (the widest are cut first, values
//! ending in `…`): numbers and times are never cut (a cut timestamp says
//! nothing), and text is not cut below [`MIN_CUT`] characters; when even
//! that does not fit, columns are hidden from the middle, the first and last
//! ones kept alternately, behind one `…` column. Output that is not
//! fitted (a file, a pipe) is never cut. Control characters in values are
//! shown escaped (`\n`), so a row always stays on one line.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The narrowest a text column is cut to, unless the terminal itself is
/// narrower: an action, an email's start, an id's first groups.
pub(crate) const MIN_CUT: usize = 12;

/// The characters a grid is drawn with.
pub(crate) struct Borders {
    /// Left, middle and right corners of the top, header-separator and
    /// bottom lines.
    top: [char; 3],
    middle: [char; 3],
    bottom: [char; 3],
    horizontal: char,
    vertical: char,
}

/// `table`: the ASCII grid of arrow's `pretty` and datafusion-cli.
pub(crate) const ASCII: Borders = Borders {
    top: ['+', '+', '+'],
    middle: ['+', '+', '+'],
    bottom: ['+', '+', '+'],
    horizontal: '-',
    vertical: '|',
};

/// `box`: Unicode box drawing, as DuckDB's duckbox.
pub(crate) const BOX: Borders = Borders {
    top: ['┌', '┬', '┐'],
    middle: ['├', '┼', '┤'],
    bottom: ['└', '┴', '┘'],
    horizontal: '─',
    vertical: '│',
};

/// A column's heading.
pub(crate) struct Heading {
    pub name: String,
    pub type_label: String,
    /// Numbers are right-aligned.
    pub numeric: bool,
    /// Numbers and times are shown whole or not at all.
    pub whole: bool,
}

/// One value as text; `None` is SQL NULL.
pub(crate) type Cell = Option<String>;

/// How a grid is drawn.
pub(crate) struct GridStyle<'a> {
    pub borders: &'a Borders,
    /// Fit into this many columns of the screen; `None` never cuts.
    pub width: Option<usize>,
    /// A row of column types under the names.
    pub types: bool,
    /// How NULL is shown.
    pub null: &'a str,
    /// Show NULL dimmed (on a colour terminal).
    pub color: bool,
}

/// What a column of the drawn grid holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Column {
        index: usize,
        width: usize,
    },
    /// The `…` standing for the hidden middle columns.
    Hidden,
}

/// The drawn grid and how many of the columns it shows.
pub(crate) struct Grid {
    pub text: String,
    pub shown_columns: usize,
}

/// Draws `rows` under `headings`.
pub(crate) fn draw(headings: &[Heading], rows: &[Vec<Cell>], style: &GridStyle) -> Grid {
    if headings.is_empty() {
        // A statement without columns (SET, CREATE VIEW) shows nothing.
        return Grid {
            text: String::new(),
            shown_columns: 0,
        };
    }
    fn shown<'c>(cell: &'c Cell, null: &'c str) -> Cow<'c, str> {
        match cell {
            Some(text) => escape_controls(text),
            None => Cow::Borrowed(null),
        }
    }
    let natural: Vec<usize> = headings
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut width = h.name.width();
            if style.types {
                width = width.max(h.type_label.width());
            }
            for row in rows {
                width = width.max(shown(&row[i], style.null).width());
            }
            width.max(1)
        })
        .collect();
    let whole: Vec<bool> = headings.iter().map(|h| h.whole).collect();
    let slots = match style.width {
        Some(width) => fit(&natural, &whole, width),
        None => natural
            .iter()
            .enumerate()
            .map(|(index, &width)| Slot::Column { index, width })
            .collect(),
    };
    let shown_columns = slots
        .iter()
        .filter(|s| matches!(s, Slot::Column { .. }))
        .count();

    let b = style.borders;
    let mut text = String::new();
    rule(&mut text, b, b.top, &slots);
    line(&mut text, b, &slots, |index| {
        (Cow::Borrowed(headings[index].name.as_str()), false, false)
    });
    if style.types {
        line(&mut text, b, &slots, |index| {
            (
                Cow::Borrowed(headings[index].type_label.as_str()),
                false,
                false,
            )
        });
    }
    rule(&mut text, b, b.middle, &slots);
    for row in rows {
        line(&mut text, b, &slots, |index| {
            (
                shown(&row[index], style.null),
                headings[index].numeric,
                style.color && row[index].is_none(),
            )
        });
    }
    // An empty result closes right under the header, as arrow's pretty
    // printer does.
    rule(&mut text, b, b.bottom, &slots);
    text.pop();
    Grid {
        text,
        shown_columns,
    }
}

/// A horizontal line: `+----+---+`.
fn rule(out: &mut String, b: &Borders, corners: [char; 3], slots: &[Slot]) {
    out.push(corners[0]);
    for (i, slot) in slots.iter().enumerate() {
        if i > 0 {
            out.push(corners[1]);
        }
        let width = match slot {
            Slot::Column { width, .. } => *width,
            Slot::Hidden => 1,
        };
        out.extend(std::iter::repeat_n(b.horizontal, width + 2));
    }
    out.push(corners[2]);
    out.push('\n');
}

/// One line of cells: `| a  | b |`. `cell` gives a column's text, whether
/// it is right-aligned and whether it is dimmed.
fn line<'c>(
    out: &mut String,
    b: &Borders,
    slots: &[Slot],
    cell: impl Fn(usize) -> (Cow<'c, str>, bool, bool),
) {
    out.push(b.vertical);
    for slot in slots {
        out.push(' ');
        match *slot {
            Slot::Column { index, width } => {
                let (text, right, dim) = cell(index);
                let text = cut(&text, width);
                let pad = width.saturating_sub(text.width());
                if right {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
                if dim {
                    let _ = write!(out, "\x1b[2m{text}\x1b[0m");
                } else {
                    out.push_str(&text);
                }
                if !right {
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            Slot::Hidden => out.push('…'),
        }
        out.push(' ');
        out.push(b.vertical);
    }
    out.push('\n');
}

/// Chooses the columns shown and their widths so that the grid is at most
/// `width` characters wide (see the module's comment).
fn fit(natural: &[usize], whole: &[bool], width: usize) -> Vec<Slot> {
    let frame = |columns: usize| 3 * columns + 1;
    let total: usize = natural.iter().sum::<usize>() + frame(natural.len());
    let all: Vec<usize> = (0..natural.len()).collect();
    if total <= width {
        return slots(natural, &all, natural, false);
    }
    let floor = |i: usize| {
        if whole[i] {
            natural[i]
        } else {
            natural[i].min(MIN_CUT)
        }
    };
    let at_floor: usize = all.iter().map(|&i| floor(i)).sum::<usize>() + frame(natural.len());
    let (kept, hidden) = if at_floor <= width {
        (all, false)
    } else {
        // Keep columns from both ends, alternately, while they fit at their
        // floor beside the `…` column.
        let mut used = frame(1) + 1;
        let (mut left, mut right) = (Vec::new(), Vec::new());
        let (mut lo, mut hi) = (0, natural.len() - 1);
        let mut from_left = true;
        while lo <= hi {
            let i = if from_left { lo } else { hi };
            let cost = floor(i) + 3;
            if used + cost > width {
                break;
            }
            used += cost;
            if from_left {
                left.push(i);
                lo += 1;
            } else {
                right.push(i);
                if hi == 0 {
                    break;
                }
                hi -= 1;
            }
            from_left = !from_left;
        }
        if left.is_empty() {
            // Narrower than one cut column: the first, in what room there is.
            left.push(0);
        }
        right.reverse();
        left.extend(right);
        (left, true)
    };
    let frame_width = frame(kept.len() + usize::from(hidden)) + usize::from(hidden);
    let wanted: Vec<usize> = kept.iter().map(|&i| natural[i]).collect();
    let room = width.saturating_sub(frame_width);
    let fixed: usize = kept
        .iter()
        .filter(|&&i| whole[i])
        .map(|&i| natural[i])
        .sum();
    let widths = if fixed <= room {
        // Numbers and times whole; the text columns share the rest.
        let cut: Vec<usize> = kept
            .iter()
            .filter(|&&i| !whole[i])
            .map(|&i| natural[i])
            .collect();
        let mut shared = share(&cut, room - fixed).into_iter();
        kept.iter()
            .map(|&i| {
                if whole[i] {
                    natural[i]
                } else {
                    shared.next().unwrap_or(1)
                }
            })
            .collect()
    } else {
        share(&wanted, room)
    };
    slots(natural, &kept, &widths, hidden)
}

/// The slots of the `kept` columns (in order) with their `widths`, the
/// `…` column after the last column kept from the left.
fn slots(natural: &[usize], kept: &[usize], widths: &[usize], hidden: bool) -> Vec<Slot> {
    let mut out = Vec::with_capacity(kept.len() + 1);
    for (n, (&index, &width)) in kept.iter().zip(widths).enumerate() {
        out.push(Slot::Column { index, width });
        let next = kept.get(n + 1).copied().unwrap_or(natural.len());
        if hidden && next != index + 1 {
            out.push(Slot::Hidden);
        }
    }
    if hidden && !out.contains(&Slot::Hidden) {
        out.push(Slot::Hidden);
    }
    out
}

/// Shares `room` among columns that want `wanted` characters: each gets
/// `min(wanted, cap)` for the largest cap that fits, and what is left goes
/// one character at a time to the columns still cut, from the left.
fn share(wanted: &[usize], room: usize) -> Vec<usize> {
    if wanted.is_empty() || wanted.iter().sum::<usize>() <= room {
        return wanted.to_vec();
    }
    let used = |cap: usize| wanted.iter().map(|&w| w.min(cap)).sum::<usize>();
    let (mut lo, mut hi) = (0, wanted.iter().copied().max().unwrap_or(0));
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if used(mid) <= room {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mut widths: Vec<usize> = wanted.iter().map(|&w| w.min(lo)).collect();
    let mut left = room.saturating_sub(used(lo));
    for (width, &want) in widths.iter_mut().zip(wanted) {
        if left == 0 {
            break;
        }
        if want > *width {
            *width += 1;
            left -= 1;
        }
    }
    widths.iter().map(|&w| w.max(1)).collect()
}

/// `text` in at most `width` screen columns, ending in `…` when cut.
fn cut(text: &str, width: usize) -> Cow<'_, str> {
    if text.width() <= width {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = c.width().unwrap_or(0);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    Cow::Owned(out)
}

/// Control characters as escapes (`\n`, `\t`, `\u{1b}`), so that a value
/// cannot break a row over lines or send the terminal a command.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heading(name: &str, numeric: bool) -> Heading {
        Heading {
            name: name.into(),
            type_label: if numeric { "bigint" } else { "varchar" }.into(),
            numeric,
            whole: numeric,
        }
    }

    fn style(width: Option<usize>, types: bool) -> GridStyle<'static> {
        GridStyle {
            borders: &ASCII,
            width,
            types,
            null: "NULL",
            color: false,
        }
    }

    #[test]
    fn a_table_that_fits_is_drawn_whole_with_numbers_right_aligned() {
        let headings = [heading("app", false), heading("n", true)];
        let rows = vec![
            vec![Some("web".to_string()), Some("7".to_string())],
            vec![None, Some("12".to_string())],
        ];
        let grid = draw(&headings, &rows, &style(Some(80), true));
        assert_eq!(
            grid.text,
            "\
+---------+--------+
| app     | n      |
| varchar | bigint |
+---------+--------+
| web     |      7 |
| NULL    |     12 |
+---------+--------+"
        );
        assert_eq!(grid.shown_columns, 2);
    }

    #[test]
    fn long_values_are_cut_to_a_share_of_the_width() {
        let headings = [heading("id", false), heading("data", false)];
        let rows = vec![vec![
            Some("evt-1".to_string()),
            Some("{\"a\":\"0123456789abcdefghij\"}".to_string()),
        ]];
        // 24 columns: a frame of 7 leaves 17; id keeps its 5, data gets 12.
        let grid = draw(&headings, &rows, &style(Some(24), false));
        assert_eq!(
            grid.text,
            "\
+-------+--------------+
| id    | data         |
+-------+--------------+
| evt-1 | {\"a\":\"01234… |
+-------+--------------+"
        );
        assert!(grid.text.lines().all(|l| l.width() <= 24));
    }

    #[test]
    fn columns_that_cannot_fit_are_hidden_from_the_middle() {
        let headings: Vec<Heading> = (1..=9)
            .map(|i| heading(&format!("column_{i}_long_name"), false))
            .collect();
        let rows = vec![(1..=9).map(|i| Some(format!("v{i}"))).collect()];
        let grid = draw(&headings, &rows, &style(Some(60), false));
        // `…` and its borders take 5; each column cut to 12 takes 15 more:
        // column 1 (20), 9 (35), 2 (50); column 8 would make 65. The frame
        // of three columns and `…` is 14, so the three share 46: 15 each
        // and one more for the first.
        let header = grid.text.lines().nth(1).unwrap();
        assert_eq!(
            header,
            "| column_1_long_n… | column_2_long_… | … | column_9_long_… |"
        );
        assert_eq!(header.width(), 60);
        assert_eq!(
            grid.text.lines().nth(3).unwrap(),
            "| v1               | v2              | … | v9              |"
        );
        assert_eq!(grid.shown_columns, 3);
        assert!(grid.text.lines().all(|l| l.width() <= 60), "{}", grid.text);
    }

    #[test]
    fn numbers_and_times_are_not_cut() {
        let mut headings = vec![heading("created_at", false), heading("data", false)];
        headings[0].whole = true;
        headings[0].type_label = "timestamptz".into();
        let rows = vec![vec![
            Some("2024-01-05T10:00:00Z".to_string()),
            Some("x".repeat(40)),
        ]];
        // 20 for the time, the frame 7, so data gets 13 of 40.
        let grid = draw(&headings, &rows, &style(Some(40), false));
        assert_eq!(
            grid.text.lines().nth(3).unwrap(),
            "| 2024-01-05T10:00:00Z | xxxxxxxxxxxx… |"
        );
        // At 30 the time stays whole and data, which no longer fits at 12,
        // is hidden.
        let grid = draw(&headings, &rows, &style(Some(30), false));
        assert_eq!(
            grid.text.lines().nth(3).unwrap(),
            "| 2024-01-05T10:00:00Z | … |"
        );
    }

    #[test]
    fn an_unfitted_grid_never_cuts() {
        let headings = [heading("data", false)];
        let long = "x".repeat(500);
        let rows = vec![vec![Some(long.clone())]];
        let grid = draw(&headings, &rows, &style(None, false));
        assert!(grid.text.contains(&long));
    }

    #[test]
    fn newlines_and_escapes_in_values_stay_on_one_line() {
        assert_eq!(escape_controls("a\nb\tc\u{1b}[2J"), "a\\nb\\tc\\u{1b}[2J");
        assert_eq!(cut("héllo wörld", 6), "héllo…");
        assert_eq!(cut("日本語テキスト", 7), "日本語…");
    }

    #[test]
    fn sharing_gives_the_narrow_their_width_and_cuts_the_wide() {
        assert_eq!(share(&[5, 40, 30], 40), vec![5, 18, 17]);
        assert_eq!(share(&[5, 6], 40), vec![5, 6]);
        assert_eq!(share(&[50, 50], 1), vec![1, 1]);
    }
}

//! The shell on a real terminal: a pseudo-terminal of a set width (`stty
//! cols`), read back as the screen shows it (escape sequences removed).

use std::path::Path;
use std::process::Command;

use rexpect::session::PtySession;

use crate::common::*;

/// `auditlake shell` in a pseudo-terminal `cols` wide, without colours and
/// without the rc file; history and state in `state`.
fn terminal(lake: &Path, state: &Path, cols: u16, env: &[(&str, &str)]) -> PtySession {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("stty cols {cols} rows 60 && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_auditlake"))
        .args(["shell", "-n", "--lake", lake.to_str().unwrap()])
        .env("XDG_STATE_HOME", state)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("PAGER")
        .env_remove("AUDITLAKE_LAKE");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut p = rexpect::session::spawn_command(command, Some(30_000)).unwrap();
    p.exp_string("auditlake> ").unwrap();
    p
}

/// Text as the terminal shows it: escape sequences and carriage returns
/// removed. (rexpect hands over each byte as a char; the bytes are UTF-8.)
fn visible(raw: &str) -> String {
    let bytes: Vec<u8> = raw.chars().map(|c| c as u32 as u8).collect();
    let raw = String::from_utf8_lossy(&bytes);
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // Parameters, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Sends `input` and returns what the shell printed before the next
/// prompt, without the echoed input line.
fn screen(p: &mut PtySession, input: &str) -> String {
    p.send_line(input).unwrap();
    let raw = p.exp_string("auditlake> ").unwrap();
    let shown = visible(&raw);
    let mut lines = shown.lines();
    let echo = lines.next().unwrap_or_default();
    assert!(echo.ends_with(input), "{echo:?} is not the input {input:?}");
    let mut out: String = lines.map(|l| format!("{l}\n")).collect();
    if out.is_empty() {
        return out;
    }
    out.truncate(out.trim_end_matches('\n').len() + 1);
    out
}

/// Runs auditlake with `args` in a terminal `cols` wide (for `-c`); what it
/// shows ends with `exit=CODE`.
fn terminal_command(cols: u16, args: &[&str]) -> PtySession {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "stty cols {cols} rows 60 && \"$0\" \"$@\"; echo \"exit=$?\""
        ))
        .arg(env!("CARGO_BIN_EXE_auditlake"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("AUDITLAKE_LAKE");
    rexpect::session::spawn_command(command, Some(30_000)).unwrap()
}

const WIDE: &str = "SELECT * FROM heroku ORDER BY id LIMIT 3;";

/// `SELECT *` of the 19 columns at 80 columns: id is cut to share the width
/// with type, times and numbers are whole, and the middle is hidden.
const WIDE_80: &str = "\
+---------------+----------------------+---------------+---+---------+---------+
| id            | created_at           | type          | … | year    | month   |
| varchar       | timestamptz          | varchar       | … | integer | integer |
+---------------+----------------------+---------------+---+---------+---------+
| 0b6c1e3a-000… | 2024-01-05T09:00:00Z | app           | … |    2024 |       1 |
| 0b6c1e3a-000… | 2024-01-10T10:15:00Z | config_change | … |    2024 |       1 |
| 0b6c1e3a-000… | 2024-01-20T17:45:30Z | collaborator  | … |    2024 |       1 |
+---------------+----------------------+---------------+---+---------+---------+
3 rows, 19 columns (5 shown)
";

const WIDE_200: &str = "\
+---------------+----------------------+---------------+---------+----------+-------------+-------------+---+---------------+--------------+--------------+--------------+---------+---------+---------+
| id            | created_at           | type          | action  | actor_id | actor_email | app_id      | … | enterprise_a… | enterprise_… | ip_address   | data         | extra   | year    | month   |
| varchar       | timestamptz          | varchar       | varchar | varchar  | varchar     | varchar     | … | varchar       | varchar      | varchar      | varchar      | varchar | integer | integer |
+---------------+----------------------+---------------+---------+----------+-------------+-------------+---+---------------+--------------+--------------+--------------+---------+---------+---------+
| 0b6c1e3a-000… | 2024-01-05T09:00:00Z | app           | create  | u-ann    | ann@acme.io | app-billing | … | ea-acme       | acme         | 203.0.113.10 | {\"region\":\"… | NULL    |    2024 |       1 |
| 0b6c1e3a-000… | 2024-01-10T10:15:00Z | config_change | set     | u-bob    | bob@acme.io | app-billing | … | ea-acme       | acme         | 198.51.100.7 | {\"changes\":… | NULL    |    2024 |       1 |
| 0b6c1e3a-000… | 2024-01-20T17:45:30Z | collaborator  | create  | u-ann    | ann@acme.io | app-billing | … | ea-acme       | acme         | 203.0.113.10 | {\"user\":{\"e… | NULL    |    2024 |       1 |
+---------------+----------------------+---------------+---------+----------+-------------+-------------+---+---------------+--------------+--------------+--------------+---------+---------+---------+
3 rows, 19 columns (14 shown)
";

#[test]
fn a_wide_select_fits_80_and_200_columns() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    for (cols, expected) in [(80u16, WIDE_80), (200, WIDE_200)] {
        let mut p = terminal(&lake, dir.path(), cols, &[]);
        let shown = screen(&mut p, WIDE);
        assert_eq!(shown, expected, "at {cols} columns");
        // The grid uses the whole width.
        assert_eq!(shown.lines().next().unwrap().chars().count(), cols as usize);
        p.send_control('d').unwrap();
        p.exp_eof().unwrap();
    }
}

/// A lake of one event whose `data` holds a 300-character description.
fn long_data_lake(dir: &Path) -> std::path::PathBuf {
    let description = "lorem ipsum dolor ".repeat(17);
    let description = &description[..300];
    let archive = dir.join("enterprise-audit-log-acme-202405.json");
    std::fs::write(
        &archive,
        format!(
            r#"{{"entries":[{{"id":"0b6c1e3a-0000-4000-8000-000000000099","created_at":"2024-05-02T08:00:00Z","type":"app","action":"update","actor":{{"id":"u-ann","email":"ann@acme.io"}},"app":{{"id":"app-web","name":"web"}},"data":{{"description":"{description}"}}}}]}}"#
        ),
    )
    .unwrap();
    let lake = dir.join("lake");
    convert_ok(&lake, &[&archive]);
    lake
}

/// A long `data` value is cut to its share of the screen, `.format line`
/// shows it whole, and `.last` prints the table again whole into $PAGER.
#[test]
fn a_long_value_is_cut_and_shown_whole_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let lake = long_data_lake(dir.path());
    let data = format!(
        "{{\"description\":\"{}\"}}",
        &"lorem ipsum dolor ".repeat(17)[..300]
    );
    let paged = dir.path().join("paged.txt");
    let pager = format!("cat > '{}'", paged.display());
    let query = "SELECT id, action, data FROM heroku;";

    let mut p = terminal(&lake, dir.path(), 80, &[("PAGER", &pager)]);
    // 80 - a frame of 10 = 70 to share: id and data get 32 and 31 (the cap
    // of 31 and one more for the first), action its 7.
    assert_eq!(
        screen(&mut p, query),
        "\
+----------------------------------+---------+---------------------------------+
| id                               | action  | data                            |
| varchar                          | varchar | varchar                         |
+----------------------------------+---------+---------------------------------+
| 0b6c1e3a-0000-4000-8000-0000000… | update  | {\"description\":\"lorem ipsum do… |
+----------------------------------+---------+---------------------------------+
"
    );
    assert_eq!(screen(&mut p, ".last"), "");
    // Whole, and without the types (a pager is not the screen).
    let whole_width = 36 + 6 + data.len() + 10;
    let border = format!(
        "+{}+{}+{}+",
        "-".repeat(38),
        "-".repeat(8),
        "-".repeat(data.len() + 2)
    );
    assert_eq!(
        std::fs::read_to_string(&paged).unwrap(),
        format!(
            "{border}\n| id{} | action | data{} |\n{border}\n| 0b6c1e3a-0000-4000-8000-000000000099 | update | {data} |\n{border}\n",
            " ".repeat(34),
            " ".repeat(data.len() - 4)
        )
    );
    assert_eq!(border.len(), whole_width);

    assert_eq!(screen(&mut p, ".format line"), "");
    assert_eq!(
        screen(&mut p, query),
        format!(
            "    id = 0b6c1e3a-0000-4000-8000-000000000099\naction = update\n  data = {data}\n"
        )
    );
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    // At 200 columns the id is whole and data has the rest: 200 - 10 - 36 - 7.
    let mut p = terminal(&lake, dir.path(), 200, &[]);
    let shown = screen(&mut p, query);
    let row = shown.lines().nth(4).unwrap();
    assert_eq!(
        row,
        format!(
            "| 0b6c1e3a-0000-4000-8000-000000000099 | update  | {}… |",
            &data[..146]
        )
    );
    assert_eq!(row.chars().count(), 200);
}

/// -c on a terminal fits the screen too, and its exit code says whether
/// the statement ran.
#[test]
fn commands_on_a_terminal_fit_and_exit() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let mut p = terminal_command(80, &["shell", "-n", "--lake", lake, "-c", WIDE]);
    let out = visible(&p.exp_eof().unwrap());
    assert_eq!(out, format!("{WIDE_80}exit=0\n"));

    let mut p = terminal_command(80, &["shell", "-n", "--lake", lake, "-c", "SELECT nope;"]);
    let out = visible(&p.exp_eof().unwrap());
    assert!(
        out.starts_with("auditlake: error: Schema error: No field named nope."),
        "{out}"
    );
    assert!(out.ends_with("\nexit=1\n"), "{out}");
}

/// A statement running over 2 s shows a progress line; Ctrl-C still
/// cancels it. Ctrl-R finds a statement in the history; Tab completes a
/// path inside quotes.
#[test]
fn progress_history_search_and_path_completion() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    std::fs::create_dir(dir.path().join("exports")).unwrap();
    let mut p = terminal(&lake, dir.path(), 120, &[]);

    p.send_line("SELECT max(value % 7) FROM range(50000000000);")
        .unwrap();
    p.exp_string("(Ctrl-C cancels)").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("query cancelled").unwrap();
    p.exp_string("auditlake> ").unwrap();

    assert!(screen(&mut p, "SELECT 41 + 1 AS answer;").contains("|     42 |"));
    assert!(screen(&mut p, "SELECT 7 AS seven;").contains("|      7 |"));
    // Ctrl-R, part of the older statement, Enter: it runs again.
    p.send_control('r').unwrap();
    p.exp_string("reverse-i-search").unwrap();
    p.send("41 +").unwrap();
    p.flush().unwrap();
    p.exp_string("SELECT 41 + 1 AS answer;").unwrap();
    p.send("\r").unwrap();
    p.flush().unwrap();
    p.exp_string("|     42 |").unwrap();
    p.exp_string("auditlake> ").unwrap();

    // Tab completes the directory inside the quotes.
    let typed = format!("COPY (SELECT 1) TO '{}/exp", dir.path().display());
    p.send(&typed).unwrap();
    p.send("\t").unwrap();
    p.flush().unwrap();
    p.exp_string("exports/").unwrap();
    p.send_line("x.csv';").unwrap();
    p.exp_string("the lake is read-only").unwrap();
    // Ctrl-D before the prompt would reach the terminal in cooked mode.
    p.exp_string("auditlake> ").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

/// On a terminal, a psql command runs when Enter is pressed (it needs no
/// `;`), and `\q` leaves.
#[test]
fn psql_commands_on_a_terminal() {
    let dir = testdata_lake();
    let mut p = terminal(&dir.path().join("lake"), &dir.path().join("state"), 80, &[]);
    p.send_line("\\dt").unwrap();
    p.exp_string("heroku  14 rows").unwrap();
    p.exp_string("auditlake> ").unwrap();
    p.send_line("\\x").unwrap();
    p.exp_string("Expanded display is on.").unwrap();
    p.send_line("SELECT 40 + 2 AS answer;").unwrap();
    p.exp_string("answer = 42").unwrap();
    p.exp_string("auditlake> ").unwrap();
    p.send_line("\\q").unwrap();
    p.exp_eof().unwrap();
}

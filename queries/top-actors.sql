-- name: top-actors
-- description: The most active actors of a month across every source
-- param: month month  UTC calendar month, YYYY-MM
SELECT actor, count(*) AS events, count(DISTINCT target) AS targets, min(created_at) AS first_seen, max(created_at) AS last_seen
FROM events
WHERE created_at >= $month_start AND created_at < $month_end
GROUP BY actor
ORDER BY events DESC, actor
LIMIT 20;

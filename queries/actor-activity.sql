-- name: actor-activity
-- description: Everything one actor did between two days, across every source
-- param: actor text  Actor (an email for Heroku)
-- param: from date  First day, YYYY-MM-DD (UTC)
-- param: to date  Last day, YYYY-MM-DD (UTC, included)
SELECT created_at, source, type, action, target, ip_address
FROM events
WHERE actor = $actor
  AND created_at >= $from AND created_at < $to_end
ORDER BY created_at, id;

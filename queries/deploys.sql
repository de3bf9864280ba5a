-- name: deploys
-- description: Releases (code_release events) of an app in a month
-- param: app text  App name
-- param: month month  UTC calendar month, YYYY-MM
SELECT created_at, actor_email AS actor, data->>'version' AS version, data
FROM heroku
WHERE type = 'code_release'
  AND app_name = $app
  AND created_at >= $month_start AND created_at < $month_end
ORDER BY created_at, id;

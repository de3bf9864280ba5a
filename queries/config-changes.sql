-- name: config-changes
-- description: Who changed config vars on an app in a month (Heroku config_change events)
-- param: app text  App name, e.g. billing-api
-- param: month month  UTC calendar month, YYYY-MM
SELECT created_at, actor_email AS actor, action, data->>'changes' AS changes, ip_address
FROM heroku
WHERE type = 'config_change'
  AND app_name = $app
  AND created_at >= $month_start AND created_at < $month_end
ORDER BY created_at, id;

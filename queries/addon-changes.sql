-- name: addon-changes
-- description: Add-ons created, attached, updated, detached or destroyed in a month
-- param: month month  UTC calendar month, YYYY-MM
SELECT created_at, app_name, action, json_get_str(data, 'addon') AS addon, actor_email AS actor
FROM heroku
WHERE type = 'addon'
  AND created_at >= $month_start AND created_at < $month_end
ORDER BY created_at, id;

-- name: collaborator-changes
-- description: Collaborators added to or removed from apps in a month
-- param: month month  UTC calendar month, YYYY-MM
SELECT created_at, app_name, action, json_get_str(data, 'user', 'email') AS collaborator, actor_email AS actor
FROM heroku
WHERE type = 'collaborator'
  AND created_at >= $month_start AND created_at < $month_end
ORDER BY created_at, id;

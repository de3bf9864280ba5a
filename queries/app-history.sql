-- name: app-history
-- description: The whole audit history of one app, oldest first
-- param: app text  App name
SELECT created_at, type, action, actor_email AS actor, data
FROM heroku
WHERE app_name = $app
ORDER BY created_at, id;

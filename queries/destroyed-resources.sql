-- name: destroyed-resources
-- description: Everything destroyed in a month (apps, add-ons, domains, memberships, …)
-- param: month month  UTC calendar month, YYYY-MM
SELECT created_at, type, coalesce(app_name, team_name, enterprise_account_name) AS target, actor_email AS actor, data
FROM heroku
WHERE action = 'destroy'
  AND created_at >= $month_start AND created_at < $month_end
ORDER BY created_at, id;

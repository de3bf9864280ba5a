-- name: membership-changes
-- description: Enterprise account and team memberships created, updated or removed in a month
-- param: month month  UTC calendar month, YYYY-MM
SELECT created_at, type, action, coalesce(team_name, enterprise_account_name) AS scope,
       json_get_str(data, 'user', 'email') AS member, actor_email AS actor
FROM heroku
WHERE type IN ('enterprise_account_membership', 'team_membership')
  AND created_at >= $month_start AND created_at < $month_end
ORDER BY created_at, id;

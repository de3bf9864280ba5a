-- name: activity-by-ip
-- description: Every event that came from one IP address, across every source
-- param: ip text  IP address
SELECT created_at, source, actor, type, action, target
FROM events
WHERE ip_address = $ip
ORDER BY created_at, id;

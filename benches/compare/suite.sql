-- The query suite of benches/compare/suite.py: questions a compliance or
-- security engineer asks of a year of Heroku audit events, each written once
-- for auditlake (table `heroku`) and once for DuckDB over its own lake (view
-- `lake`, over `read_parquet(…, hive_partitioning = true)`). Both answers
-- are compared row by row: times are epoch milliseconds on both sides, and
-- every list is ordered to the last column.
--
-- Values: ${MONTH} ${YEAR} (the third month of the data), ${APP}, ${ACTOR},
-- ${TEAM}, ${IP}, ${ID} (an id of that month), ${FROM}/${TO} (its quarter),
-- ${HOUR} (an hour of its 15th day, as YYYY-MM-DDTHH).

-- name: by-type-action
-- question: What happened, by type and action, over the whole lake?
-- auditlake
SELECT type, action, count(*) AS n FROM heroku GROUP BY type, action ORDER BY type, action;
-- duckdb
SELECT type, action, count(*) AS n FROM lake GROUP BY type, action ORDER BY type, action;

-- name: per-month
-- question: How many events does each month hold?
-- auditlake
SELECT year, month, count(*) AS n FROM heroku GROUP BY year, month ORDER BY year, month;
-- duckdb
SELECT year, month, count(*) AS n FROM lake GROUP BY year, month ORDER BY year, month;

-- name: top-actors-month
-- question: Who acted most in the month?
-- auditlake
SELECT actor_email, count(*) AS n FROM heroku WHERE year = ${YEAR} AND month = ${MONTH}
GROUP BY actor_email ORDER BY n DESC, actor_email LIMIT 10;
-- duckdb
SELECT actor_email, count(*) AS n FROM lake WHERE year = ${YEAR} AND month = ${MONTH}
GROUP BY actor_email ORDER BY n DESC, actor_email LIMIT 10;

-- name: per-team-month
-- question: How many events per team in the month?
-- auditlake
SELECT team_name, count(*) AS n FROM heroku WHERE year = ${YEAR} AND month = ${MONTH}
GROUP BY team_name ORDER BY team_name NULLS LAST;
-- duckdb
SELECT team_name, count(*) AS n FROM lake WHERE year = ${YEAR} AND month = ${MONTH}
GROUP BY team_name ORDER BY team_name NULLS LAST;

-- name: actor-count-month
-- question: How many events did one actor cause in the month (a column the files are not sorted by)?
-- auditlake
SELECT count(*) AS n FROM heroku WHERE year = ${YEAR} AND month = ${MONTH} AND actor_email = '${ACTOR}';
-- duckdb
SELECT count(*) AS n FROM lake WHERE year = ${YEAR} AND month = ${MONTH} AND actor_email = '${ACTOR}';

-- name: team-config-month
-- question: Which config changes did one team make in the month?
-- auditlake
SELECT app_name, count(*) AS n FROM heroku
WHERE year = ${YEAR} AND month = ${MONTH} AND team_name = '${TEAM}' AND type = 'config_change'
GROUP BY app_name ORDER BY app_name;
-- duckdb
SELECT app_name, count(*) AS n FROM lake
WHERE year = ${YEAR} AND month = ${MONTH} AND team_name = '${TEAM}' AND type = 'config_change'
GROUP BY app_name ORDER BY app_name;

-- name: by-ip
-- question: Everything done from one IP address, over the whole lake.
-- auditlake
SELECT CAST(created_at AS BIGINT) AS t, id, actor_email, type, action, app_name FROM heroku
WHERE ip_address = '${IP}' ORDER BY t, id;
-- duckdb
SELECT epoch_ms(created_at) AS t, CAST(id AS VARCHAR) AS id, actor_email, type, action, app_name FROM lake
WHERE ip_address = '${IP}' ORDER BY t, id;

-- name: actor-quarter
-- question: One actor's activity over a quarter.
-- auditlake
SELECT CAST(created_at AS BIGINT) AS t, id, type, action, app_name FROM heroku
WHERE actor_email = '${ACTOR}' AND created_at >= TIMESTAMP '${FROM}T00:00:00Z' AND created_at < TIMESTAMP '${TO}T00:00:00Z'
ORDER BY t, id;
-- duckdb
SELECT epoch_ms(created_at) AS t, CAST(id AS VARCHAR) AS id, type, action, app_name FROM lake
WHERE actor_email = '${ACTOR}' AND created_at >= TIMESTAMPTZ '${FROM} 00:00:00+00' AND created_at < TIMESTAMPTZ '${TO} 00:00:00+00'
ORDER BY t, id;

-- name: one-hour
-- question: What happened across all apps in one hour?
-- auditlake
SELECT CAST(created_at AS BIGINT) AS t, id, app_name, type, action, actor_email FROM heroku
WHERE created_at >= TIMESTAMP '${HOUR}:00:00Z' AND created_at < TIMESTAMP '${HOUR}:00:00Z' + INTERVAL '1 hour'
ORDER BY t, id;
-- duckdb
SELECT epoch_ms(created_at) AS t, CAST(id AS VARCHAR) AS id, app_name, type, action, actor_email FROM lake
WHERE created_at >= TIMESTAMPTZ '${HOUR_SPACE}:00:00+00' AND created_at < TIMESTAMPTZ '${HOUR_SPACE}:00:00+00' + INTERVAL '1 hour'
ORDER BY t, id;

-- name: text-search
-- question: Which events mention STRIPE_KEY anywhere in their details?
-- auditlake
SELECT app_name, count(*) AS n FROM heroku WHERE data LIKE '%STRIPE_KEY%' GROUP BY app_name ORDER BY app_name;
-- duckdb
SELECT app_name, count(*) AS n FROM lake WHERE data LIKE '%STRIPE_KEY%' GROUP BY app_name ORDER BY app_name;

-- name: ips-per-actor
-- question: From how many IP addresses did each actor work?
-- auditlake
SELECT actor_email, count(DISTINCT ip_address) AS ips FROM heroku GROUP BY actor_email ORDER BY actor_email;
-- duckdb
SELECT actor_email, count(DISTINCT ip_address) AS ips FROM lake GROUP BY actor_email ORDER BY actor_email;

-- name: point-lookup
-- question: One event by its id.
-- auditlake
SELECT id, CAST(created_at AS BIGINT) AS t, type, action, actor_email, app_name, data FROM heroku WHERE id = '${ID}';
-- duckdb
SELECT CAST(id AS VARCHAR) AS id, epoch_ms(created_at) AS t, type, action, actor_email, app_name, data FROM lake WHERE id = '${ID}';

-- name: destroyed
-- question: Every resource ever destroyed.
-- auditlake
SELECT CAST(created_at AS BIGINT) AS t, id, type, app_name, actor_email FROM heroku WHERE action = 'destroy' ORDER BY t, id;
-- duckdb
SELECT epoch_ms(created_at) AS t, CAST(id AS VARCHAR) AS id, type, app_name, actor_email FROM lake WHERE action = 'destroy' ORDER BY t, id;

-- name: headline
-- question: Who changed config on the app in the month? (the named query config-changes)
-- auditlake
SELECT CAST(created_at AS BIGINT) AS t, actor_email, action, data->>'changes' AS changes, ip_address FROM heroku
WHERE year = ${YEAR} AND month = ${MONTH} AND type = 'config_change' AND app_name = '${APP}'
ORDER BY t, id;
-- duckdb
SELECT epoch_ms(created_at) AS t, actor_email, action, data->>'changes' AS changes, ip_address FROM lake
WHERE year = ${YEAR} AND month = ${MONTH} AND type = 'config_change' AND app_name = '${APP}'
ORDER BY t, id;

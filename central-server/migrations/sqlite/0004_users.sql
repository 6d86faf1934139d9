-- Dashboard and API users, their facilities, API tokens, sessions, and the security log.

-- role: admin | supervisor | technician | auditor. password: an Argon2id PHC string.
-- failures counts consecutive failed logins; locked_until (unix seconds) refuses logins
-- until then.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

-- The facilities a supervisor or technician may see.
CREATE TABLE user_facilities (
    user_id INTEGER NOT NULL REFERENCES users(id),
    facility_id TEXT NOT NULL,
    PRIMARY KEY (user_id, facility_id)
) WITHOUT ROWID;

-- API tokens: only the SHA-256 of the secret is kept. scope: read | metrics.
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    label TEXT NOT NULL,
    scope TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT
);

-- Dashboard sessions: the SHA-256 of the cookie's id, the user (so that a new password or a
-- disabled account ends the user's sessions), the session's data (JSON), its expiry (unix
-- seconds).
CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    user_id INTEGER,
    data TEXT NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions(expires);

-- Who did what: logins, failed logins, lockouts, user and token changes, exports.
CREATE TABLE security_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    remote TEXT NOT NULL DEFAULT ''
);

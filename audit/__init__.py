"""The append-only audit log, and where the security and privacy rules of the project live.

Security in short
-----------------
Model outputs, prompts and critiques are untrusted: templates auto-escape, JS builds DOM from text nodes,
CSV exports neutralise formulas. Every write checks role and ownership in the service layer; another
user's ids answer 404. CSRF covers htmx writes (`hx-headers` on `<body>`). The production profile passes
`manage.py check --deploy` with no warnings; secrets come from env vars or `*_FILE` files.

Security and privacy (issue 13)
-------------------------------
- **Floors.** A new bottom-floor app `audit`, beside `jobs` (`"jobs | audit"` in the import-linter
  layers): `AuditEvent` (who by id and name, what, which object, when, IP, details) is append-only — the
  model and its queryset refuse changes, the admin site is read-only, and a trigger (PostgreSQL, SQLite)
  refuses `UPDATE`/`DELETE`. `audit.services.audit_record` is the one write; the actor and IP default to
  the current request's (`audit.context.AuditContextMiddleware`). Recorded: logins, failed logins, token
  logins, logouts, role (group) changes, imports, exports and downloads, round launch/cancel/resume,
  version activation (promote/rollback), project settings. Admins read it at `/audit/` (filters, CSV).
- **Privacy.** Exports are visible to their creator and admins only (another's id is a 404);
  identified exports are for admins only. Researchers see annotators only as the export pseudonym
  (`annotations.privacy.annotator_name`: API `annotator_username`, progress, annotate and export pages).
- **Roles.** Every page needs a role (`roles.require_role`); `tests/security/test_access_matrix.py` holds
  the expected answer of every HTML route and API operation for each role, anonymous and no-role.
- **Login protection.** django-axes counts failures in the database (every process and host): past
  `LOGIN_FAILURE_LIMIT` (5) from one client address the username is locked *from that address* for
  `LOGIN_LOCKOUT_MINUTES` (15) on the login page and the token endpoint (429); attempts while locked are
  not recorded (they do not restart the lock) and the owner still logs in from any other address.
  Credentials that break the input rules (`login_guard.credentials_problem`: too long, NUL, surrogates)
  get a 400 before any backend sees them. Failures are also counted per client address over all accounts
  (`annotations/login_guard.py`, in the shared cache; against password spraying): past
  `LOGIN_ADDRESS_FAILURE_LIMIT` (40) the address's login attempts (page, admin login, token endpoint) get
  429 before any password is checked, until `LOGIN_LOCKOUT_MINUTES` pass without a failure; a success
  does not reset the count. The client address is one rule everywhere (`audit.context.client_ip`: login
  limits, DRF throttles, the audit log): the TCP peer; behind `NUM_PROXIES` trusted proxies (1 with
  `BEHIND_TLS_PROXY`) the `X-Forwarded-For` entry the outermost one appended, counted from the right.
  `CACHES` is shared (`CACHE_URL`: the database by default, Redis in compose), so
  DRF throttles count across gunicorn workers.
- **CSP.** django-csp: `default-src 'self'`, scripts from self (+ nonce), styles from self only (no
  `style=""`: data-dependent styles are `data-*` attributes applied by `static/js/app.js`),
  `frame-ancestors 'none'`, reports to `/csp-report/` (logged). The DRF browsable API is off (JSON only);
  Swagger UI loads its start-up script from a URL.
- **Bad input.** `annotations/safejson.py` answers deep nesting, NUL and lone surrogates with a 400
  (DRF parser, the `spans` form field, imports); no format-suffix routes; reward schemes validated.
- **Exports.** Per-user limits (`T2G_EXPORT_MAX_ACTIVE_PER_USER`, `T2G_EXPORT_MAX_PER_HOUR_PER_USER`:
  429), a free-space check (`T2G_EXPORT_MIN_FREE_BYTES`: 507), retention (`T2G_EXPORT_RETENTION_DAYS`,
  the beat's `expire-exports`).
- **Production by default.** The settings default to DEBUG off, however the server is started (`DEBUG=1`
  opts in to development; start-up fails without `SECRET_KEY` in production); `make run` runs DEBUG off on
  localhost with a key file under `var/` (`make run DEBUG=1` for development);
  styled 400/403/404/500 pages; 4xx are logged without tracebacks; the image's health check
  (`scripts/healthcheck.py`) works under DEBUG=0.
"""

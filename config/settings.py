"""Settings, read from the environment.

With no environment set the project runs embedded: SQLite, the in-memory channel layer and Celery
tasks executed eagerly in-process, so `make demo` works on a fresh machine. Setting
`DATABASE_URL` and `REDIS_URL` moves the same code onto PostgreSQL, channels_redis and a real
Celery broker. See the settings table in README.md.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.redis_url import with_defaults

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default="dev-only-insecure-key-change-me" if DEBUG else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("SG_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "clinic",
    "community",
    "devices",
    "fhir",
    "frontend",
    "oauth2_provider",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database: SQLite embedded, PostgreSQL when DATABASE_URL is set --------------------------
# An empty DATABASE_URL counts as unset (the Makefile's demo target clears it that way).
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the ASGI server read while a request writes; the timeout waits out short locks
    # instead of failing a reading upload with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            # IMMEDIATE takes the write lock at BEGIN, so concurrent writers wait their turn
            # instead of failing when a read transaction cannot be upgraded.
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # Under ASGI each sync request may run on another thread, so persistent per-thread
    # connections pile up until PostgreSQL refuses clients. A psycopg pool per process instead.
    if env.bool("DATABASE_POOL", default=True):
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=16),
            "timeout": 30,
        }
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=0))
        DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # Parameters bound by the server, not spliced into the SQL text by the client: the same
    # query text recurs, so psycopg can prepare it and PostgreSQL stops parsing and planning it
    # again (1-2 ms a query on the partitioned vitals table; docs/scaling.md).
    DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool(
        "DATABASE_SERVER_SIDE_BINDING", default=True
    )
    # A statement a connection has run this many times is prepared: parsed once, and planned
    # once where a generic plan serves (Django leaves preparation off unless asked; 0 keeps it
    # off, as behind a PgBouncer). Generic plans only inside the ingest and evaluation
    # transactions (fhir.bulk.allow_generic_plans): everywhere else the connection plans each
    # run for its values, since the generic plan of the Observation search took 15 s where the
    # custom one takes 12 ms (1,000,000 stored; docs/scaling.md).
    _prepare_threshold = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
    if _prepare_threshold > 0:
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = _prepare_threshold
        # Added to, not replacing, any `options` the DATABASE_URL carries.
        _options = DATABASES["default"]["OPTIONS"].get("options", "")
        DATABASES["default"]["OPTIONS"]["options"] = (
            f"{_options} -c plan_cache_mode=force_custom_plan".strip()
        )
    else:
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if env.str("SG_TEST_DATABASE_NAME", default=""):
    # Lets several test runs share one PostgreSQL server without fighting over test_<name>.
    DATABASES["default"]["TEST"] = {"NAME": env.str("SG_TEST_DATABASE_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels and Celery: in-memory/eager embedded, Redis when REDIS_URL is set ---------------
REDIS_URL = env.str("REDIS_URL", default="")
# "core": channels_redis' RedisChannelLayer, one message per socket of a group (capacity and
# expiry per channel). "pubsub": RedisPubSubChannelLayer, one PUBLISH per group fanned out in
# each server process; it halved alert push latency to a 1,000-socket board (docs/scaling.md).
# Both deliver at most once; the boards' sequence numbers and replay cover a lost frame.
CHANNEL_LAYER_KIND = env.str("SG_CHANNEL_LAYER", default="core")
if CHANNEL_LAYER_KIND not in ("core", "pubsub"):
    raise ImproperlyConfigured(
        f"SG_CHANNEL_LAYER must be core or pubsub, not {CHANNEL_LAYER_KIND!r}"
    )
if REDIS_URL:
    # redis-py reads with a 5 s timeout by default, the same as channels_redis' blocking pop,
    # which can kill an idle consumer (django/channels_redis#422): a longer read timeout on every
    # host keeps idle sockets alive.
    _channel_hosts = [
        with_defaults(host, socket_timeout=30, max_connections=4000)
        for host in env.list("CHANNEL_REDIS_HOSTS", default=[REDIS_URL])
    ]
    _channel_prefix = env.str("SG_CHANNEL_PREFIX", default="asgi")
    if CHANNEL_LAYER_KIND == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": _channel_hosts, "prefix": _channel_prefix},
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": _channel_hosts, "capacity": 1500, "prefix": _channel_prefix},
            }
        }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool(
    "CELERY_TASK_ALWAYS_EAGER", default=not (REDIS_URL or env.str("CELERY_BROKER_URL", default=""))
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# With acks_late on Redis, a task whose worker died is redelivered after this many seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("SG_CELERY_VISIBILITY_TIMEOUT_S", default=3600)
}
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "alerts"
CELERY_TASK_ROUTES = {
    "fhir.tasks.*": {"queue": "ingest"},
    "clinic.tasks.*": {"queue": "alerts"},
    "community.tasks.*": {"queue": "alerts"},
    "devices.tasks.*": {"queue": "interfaces"},
}
CELERY_TIMEZONE = "Asia/Shanghai"
# A reading not evaluated this long after it was stored is swept up by evaluate_missed.
MISSED_EVALUATION_AFTER_S = env.int("SG_MISSED_EVALUATION_AFTER_S", default=60)
CELERY_BEAT_SCHEDULE = {
    # Readings whose evaluation task was lost (broker restart, worker crash) are evaluated anyway.
    "evaluate-missed-readings": {
        "task": "community.tasks.evaluate_missed",
        "schedule": env.float("SG_MISSED_EVALUATION_SWEEP_S", default=60.0),
    },
    # Unacknowledged alerts climb a tier when their deadline passes (also run by countdown).
    "escalate-overdue-alerts": {
        "task": "community.tasks.escalate_overdue",
        "schedule": env.float("SG_ESCALATION_SWEEP_S", default=30.0),
    },
    # Next months' vitals partitions exist before readings need them (PostgreSQL only).
    "ensure-vitals-partitions": {
        "task": "fhir.tasks.ensure_vitals_partitions",
        "schedule": 6 * 3600.0,
    },
    # No data from patients expected to measure, devices offline, batteries low.
    "check-silence": {
        "task": "community.tasks.check_silence",
        "schedule": env.float("SG_SILENCE_SWEEP_S", default=300.0),
    },
}

# --- Auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "frontend:login"
LOGIN_REDIRECT_URL = "frontend:home"
LOGOUT_REDIRECT_URL = "frontend:login"

# --- i18n: Simplified Chinese first, English ---------------------------------------------------
LANGUAGE_CODE = env.str("DJANGO_LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves static files from the ASGI app itself (no separate web server needed);
# in DEBUG it finds them in the apps' static folders without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env.str("SG_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"

# --- Limits ------------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("SG_MAX_BODY_BYTES", default=10 * 1024 * 1024)
FHIR_MAX_BUNDLE_ENTRIES = env.int("SG_FHIR_MAX_BUNDLE_ENTRIES", default=1000)
FHIR_BASE_URL = env.str("SG_FHIR_BASE_URL", default="http://localhost:8000/fhir")

# --- Production hardening (on when DEBUG is off) -----------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # Off only for production settings served over plain http on loopback (`make up`).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("SG_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
        "kombu": {"level": "ERROR"},
    },
}


# --- Security: OAuth2 for hospital systems, caches, throttling, CSP (docs/security.md) -------
# SMART Backend Services: django-oauth-toolkit issues the tokens; clients authenticate with a
# signed JWT assertion checked by fhir.smart.SmartValidator, never with a shared secret.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER = {
    "OAUTH2_VALIDATOR_CLASS": "fhir.smart.SmartValidator",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("SG_SMART_TOKEN_SECONDS", default=300),
    "SCOPES_BACKEND_CLASS": "fhir.smart.SmartScopes",
    # RFC 9700 (OAuth 2.0 Security BCP) throughout; tokens stored only as their checksum
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "PKCE_REQUIRED": True,
}
SMART_TOKEN_URL = env.str("SG_SMART_TOKEN_URL", default="")  # default: FHIR base's /auth/token
SMART_ASSERTION_MAX_SECONDS = 300

# One cache for every node: Redis when REDIS_URL is set (login lockout and rate limits must be
# shared by all ASGI nodes), per-process memory in the embedded default.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("CACHE_REDIS_URL", default=REDIS_URL),
            "KEY_PREFIX": "sg",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Login throttling: after LOGIN_FAILURE_LIMIT failures for one username (or from one address)
# within LOGIN_LOCKOUT_SECONDS, further logins are refused until the window passes.
AUTHENTICATION_BACKENDS = ["clinic.lockout.LockoutBackend"]  # ModelBackend + lockout
LOGIN_FAILURE_LIMIT = env.int("SG_LOGIN_FAILURE_LIMIT", default=5)
LOGIN_LOCKOUT_SECONDS = env.int("SG_LOGIN_LOCKOUT_SECONDS", default=900)

# Rate limits on /fhir/ per bridge and per hospital-system client: "requests/seconds".
FHIR_RATE_LIMITS = {
    "bridge": env.str("SG_FHIR_RATE_BRIDGE", default="1200/60"),
    "system": env.str("SG_FHIR_RATE_SYSTEM", default="3000/60"),
}

# Content Security Policy: scripts and styles only from our own static files, no inline script.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

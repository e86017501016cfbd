"""The project skeleton: import clash, settings switch, service checks, roles and their pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from clinic import roles
from clinic.models import Patient

ROOT = Path(__file__).resolve().parent.parent


def test_fhir_resources_and_our_fhir_package_both_import():
    from fhir.resources.R4B.patient import Patient as FhirPatient

    from fhir.apps import FhirConfig

    assert FhirPatient(id="x").id == "x"
    assert Path(FhirConfig.path).name == "fhir"


def _settings_in_subprocess(env_overrides: dict[str, str]) -> dict[str, str]:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], "
        "'layer': s.CHANNEL_LAYERS['default']['BACKEND'], 'eager': s.CELERY_TASK_ALWAYS_EAGER, "
        "'broker': s.CELERY_BROKER_URL}))"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")
    }
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="config.settings")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_environment_means_embedded_sqlite_memory_layer_and_eager_celery():
    s = _settings_in_subprocess({})
    assert s == {
        "db": "django.db.backends.sqlite3",
        "layer": "channels.layers.InMemoryChannelLayer",
        "eager": True,
        "broker": "memory://",
    }


def test_service_urls_switch_to_postgresql_redis_and_a_real_broker():
    s = _settings_in_subprocess(
        {
            "DATABASE_URL": "postgres://u@db.example:5432/x",
            "REDIS_URL": "redis://cache.example:6379/0",
        }
    )
    assert s == {
        "db": "django.db.backends.postgresql",
        "layer": "channels_redis.core.RedisChannelLayer",
        "eager": False,
        "broker": "redis://cache.example:6379/0",
    }


def test_sg_channel_layer_picks_the_pubsub_layer_and_refuses_anything_else():
    redis = {"REDIS_URL": "redis://cache.example:6379/0"}
    s = _settings_in_subprocess({**redis, "SG_CHANNEL_LAYER": "pubsub"})
    assert s["layer"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _settings_in_subprocess({**redis, "SG_CHANNEL_LAYER": "rabbit"})
    assert "SG_CHANNEL_LAYER must be core or pubsub, not 'rabbit'" in failed.value.stderr


@pytest.mark.parametrize("which", ["DATABASE_URL", "REDIS_URL"])
def test_ci_fails_naming_the_missing_service(which):
    env = dict(
        os.environ,
        CI="true",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/x",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    env[which] = (
        env[which].replace(":5432", ":1").replace(":6379", ":1")
    )  # nothing listens on port 1
    out = subprocess.run(
        [sys.executable, "tests/run_with_services.py", "--collect-only", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    name = "PostgreSQL" if which == "DATABASE_URL" else "Redis"
    assert f"{name} is not reachable" in out.stderr


def test_seed_is_idempotent_and_has_the_known_patients(demo):
    from community.seed import seed_demo

    again = seed_demo()
    assert again.created == 0
    assert again.patients == demo.patients >= 50
    chen = Patient.objects.get(resident_id="440106195803120021")
    assert (chen.name, chen.sex, str(chen.birth_date), chen.community.district) == (
        "陈美玲",
        "female",
        "1958-03-12",
        "天河区",
    )
    li = Patient.objects.get(resident_id="440304196207150032")
    assert li.enrolments.get().conditions == ["copd", "heart_failure"]
    for patient in Patient.objects.all():
        patient.full_clean()  # every seeded identity number is valid and matches its record


@pytest.mark.django_db
def test_patient_whose_birth_date_disagrees_with_the_identity_number_is_refused():
    p = Patient(
        name="测试",
        sex="female",
        birth_date="1958-03-13",
        resident_id="440106195803120021",
        city="guangzhou",
    )
    with pytest.raises(ValidationError) as err:
        p.full_clean()
    assert "birth_date" in err.value.message_dict


@pytest.mark.django_db
def test_duplicate_identity_number_is_refused(demo):
    p = Patient(
        name="重复",
        sex="female",
        birth_date="1958-03-12",
        resident_id="440106195803120021",
        city="guangzhou",
    )
    with pytest.raises(ValidationError) as err:
        p.full_clean()
    assert "resident_id" in err.value.message_dict


@pytest.mark.django_db
def test_unknown_role_is_refused(django_user_model):
    user = django_user_model.objects.create_user("x")
    with pytest.raises(roles.UnknownRole, match="unknown role 'nurse'"):
        roles.assign_role(user, "nurse")


@pytest.mark.parametrize(
    "username, landing",
    [
        ("admin", "/admin/"),
        ("dr_tianhe", "/hub/"),
        ("clin_zsy", "/hospital/"),
        ("chenmeiling", "/me/"),
    ],
)
def test_each_role_logs_in_and_lands_on_its_page(client, demo, username, landing):
    from community.demo_data import DEMO_PASSWORD

    response = client.post(
        "/login/", {"username": username, "password": DEMO_PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == landing
    assert response.status_code == 200


def test_wrong_password_stays_on_login_with_an_error(client, demo):
    response = client.post("/login/", {"username": "dr_tianhe", "password": "nope"})
    assert response.status_code == 200
    assert b'role="alert"' in response.content


@pytest.mark.parametrize("path", ["/hub/", "/hospital/", "/me/"])
def test_pages_of_other_roles_are_forbidden(client, demo, path):
    client.login(username="chenmeiling" if path != "/me/" else "dr_tianhe", password="sgdemo2026")
    assert client.get(path).status_code == 403


def test_anonymous_users_are_sent_to_login(client, db):
    response = client.get("/hub/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_admin_lists_every_model(admin_client, demo):
    for path in [
        "clinic/patient",
        "clinic/hospital",
        "clinic/practitioner",
        "clinic/careplan",
        "community/dispatchhub",
        "community/community",
    ]:
        assert admin_client.get(f"/admin/{path}/?q=陈").status_code == 200


def test_deploy_check_with_production_settings_is_clean():
    env = dict(
        os.environ,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="x" * 60 + "production-secret-key-with-entropy-1234567890",
        DJANGO_ALLOWED_HOSTS="rpm.example.org",
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr

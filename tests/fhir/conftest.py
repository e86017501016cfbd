import pytest

from clinic.models import Patient
from devices.models import Bridge

CHEN = "440106195803120021"
LI = "440304196207150032"


@pytest.fixture
def bridge_token(demo):
    """A bridge for 陈美玲's household; returns its bearer token."""
    bridge = Bridge(name="陈美玲家")
    token = bridge.issue_token()
    bridge.save()
    bridge.patients.set([Patient.objects.get(resident_id=CHEN)])
    return token


@pytest.fixture
def bridge_client(client, bridge_token):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {bridge_token}"
    return client

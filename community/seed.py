"""Demo data: the pilot's hospitals, communities and hubs, staff, and about 50 patients.

Idempotent: every object is found by its natural key (code, username, identity number) and only
created when missing, so a second `make demo` reuses what the first one made.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from clinic import roles
from clinic.identity import check_character, parse_resident_id
from clinic.models import CarePlan, Enrolment, Hospital, Patient, Practitioner
from community import demo_data as data
from community.models import Community, DispatchHub, HubMembership

DEMO_HOSPITAL_SYSTEM = "urn:oid:2.16.156.10011.1.1"  # national organisation code (demo values)


@dataclass
class SeedSummary:
    hospitals: int
    communities: int
    hubs: int
    staff: int
    patients: int
    created: int


def demo_resident_id(region: str, birth: date, sequence: int, sex: str) -> str:
    """A valid-format identity number: the sequence's last digit is odd for men, even for women."""
    seq = sequence % 500 * 2 + (1 if sex == "male" else 2)
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


@transaction.atomic
def seed_demo(*, rng_seed: int = 2026) -> SeedSummary:
    created = 0
    roles.ensure_groups()
    User = get_user_model()

    hospitals = {}
    for code, name, name_en, city, org_id in data.HOSPITALS:
        hospitals[code], new = Hospital.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "name_en": name_en,
                "city": city,
                "is_pilot": True,
                "identifiers": [{"system": DEMO_HOSPITAL_SYSTEM, "value": org_id}],
            },
        )
        created += new

    communities = {}
    regions = {}
    for code, name, name_en, city, district, region in data.COMMUNITIES:
        communities[code], new = Community.objects.get_or_create(
            code=code,
            defaults={"name": name, "name_en": name_en, "city": city, "district": district},
        )
        regions[code] = region
        created += new

    hubs = {}
    hub_hospital = {}
    for code, name, name_en, city, served, hospital_code in data.HUBS:
        hubs[code], new = DispatchHub.objects.get_or_create(
            code=code, defaults={"name": name, "name_en": name_en, "city": city}
        )
        if new:
            hubs[code].communities.set([communities[c] for c in served])
        for c in served:
            hub_hospital[c] = hospitals[hospital_code]
        created += new

    def user(username: str, full_name: str, role: str):
        nonlocal created
        account, new = User.objects.get_or_create(
            username=username, defaults={"first_name": full_name}
        )
        if new:
            account.set_password(data.DEMO_PASSWORD)
            account.save()
            created += 1
        roles.assign_role(account, role)
        return account

    admin = user("admin", "系统管理员", roles.ADMIN)
    admin.email = admin.email or "admin@example.org"
    admin.save(update_fields=["email"])

    care_team: dict[str, list[Practitioner]] = {}
    for username, name, role, place, duty_lead in data.STAFF:
        account = user(username, name, role)
        is_hospital = role == roles.HOSPITAL_CLINICIAN
        practitioner, _ = Practitioner.objects.get_or_create(
            user=account,
            defaults={
                "name": name,
                "role": role,
                "hospital": hospitals[place] if is_hospital else None,
            },
        )
        if not is_hospital:
            HubMembership.objects.get_or_create(
                hub=hubs[place], practitioner=practitioner, defaults={"is_duty_lead": duty_lead}
            )
            for community in hubs[place].communities.all():
                care_team.setdefault(community.code, []).append(practitioner)

    def patient(**fields) -> Patient:
        nonlocal created
        conditions = fields.pop("conditions")
        username = fields.pop("username", None)
        existing = Patient.objects.filter(resident_id=fields["resident_id"]).first()
        if existing:
            return existing
        parse_resident_id(fields["resident_id"])  # refuse a bad number before writing anything
        p = Patient(**fields)
        p.full_clean(exclude=["community", "user"])
        if username:
            p.user = user(username, p.name, roles.PATIENT)
        p.save()
        created += 1
        enrolment = Enrolment.objects.create(
            patient=p,
            start=date(2026, 9, 1),
            conditions=conditions,
            hospital=hub_hospital[p.community.code],
        )
        enrolment.care_team.set(care_team.get(p.community.code, []))
        CarePlan.objects.create(patient=p, news2_scale=2 if "copd" in conditions else 1)
        return p

    for (
        username,
        name,
        family,
        given,
        sex,
        birth,
        community,
        rid,
        conditions,
        phone,
    ) in data.KNOWN_PATIENTS:
        c = communities[community]
        patient(
            username=username,
            name=name,
            family_name=family,
            given_name=given,
            sex=sex,
            birth_date=date.fromisoformat(birth),
            resident_id=rid,
            phone=phone,
            city=c.city,
            community=c,
            address=f"{c.district}{c.name}",
            conditions=conditions,
        )

    rng = random.Random(rng_seed)
    for i in range(data.GENERATED_PATIENTS):
        code, _name, _en, city, district, region = data.COMMUNITIES[i % len(data.COMMUNITIES)]
        sex = "male" if i % 2 else "female"
        family = data.FAMILY_NAMES[rng.randrange(len(data.FAMILY_NAMES))]
        given = rng.choice(data.GIVEN_MALE if sex == "male" else data.GIVEN_FEMALE)
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(365 * 30))
        c = communities[code]
        patient(
            name=family + given,
            family_name=family,
            given_name=given,
            sex=sex,
            birth_date=birth,
            resident_id=demo_resident_id(region, birth, i + 100, sex),
            phone=f"13{rng.randrange(10**8, 10**9)}",
            city=city,
            community=c,
            address=f"{district}{c.name}",
            conditions=data.CONDITION_SETS[i % len(data.CONDITION_SETS)],
        )

    return SeedSummary(
        hospitals=Hospital.objects.count(),
        communities=Community.objects.count(),
        hubs=DispatchHub.objects.count(),
        staff=Practitioner.objects.count(),
        patients=Patient.objects.count(),
        created=created,
    )

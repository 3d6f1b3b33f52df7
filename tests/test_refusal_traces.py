"""A refusal leaves the same trace on the actor's own chain whether the id exists or not, so another
provider's DPO cannot tell from their own log which referral ids exist elsewhere. The owner's chain gets
the full event (its client's pseudonym) for its DPO."""

import uuid

import pytest

from consent.access.models import AccessEvent
from tests.conftest import api_client

TRACE = ("action", "outcome", "object_type", "object_id", "client_pseudonym", "referral_id", "status", "alert_reasons",
         "method", "path", "actor_name", "actor_organisation_kind")  # fmt: skip


def _probe(user, referral_id, suffix=""):
    last = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    response = api_client(user).get(f"/api/v1/referrals/{referral_id}/{suffix}")
    assert response.status_code == 404
    upto = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    return AccessEvent.objects.filter(pk__gt=last, pk__lte=upto)


@pytest.mark.parametrize("suffix", ["", "access-history/", "fhir-consent/"])
def test_another_providers_therapist_leaves_the_same_trace_on_their_own_chain_either_way(world, suffix):
    existing = _probe(world.other_provider_therapist, world.referral.pk, suffix)
    made_up = _probe(world.other_provider_therapist, uuid.uuid4(), suffix)

    own = [existing.filter(chain=world.medway).values(*TRACE).get(), made_up.filter(chain=world.medway).values(*TRACE).get()]
    assert own[0] == own[1]
    assert own[0]["client_pseudonym"] is None and own[0]["referral_id"] is None
    assert str(world.referral.pk) not in own[0]["path"] and own[0]["object_id"] == "[withheld]"
    # The owner's DPO sees the attempt on their client; nothing goes on Kent's chain for an id Kent does not hold.
    (owner,) = existing.filter(chain=world.kent)
    assert (owner.referral_id, owner.client_pseudonym, owner.outcome) == (world.referral.pk, world.referral.client_id, "denied")
    assert not made_up.filter(chain=world.kent).exists()


def test_a_work_coachs_probe_looks_the_same_to_a_co_located_provider_that_does_not_hold_the_id(world):
    existing = _probe(world.work_coach, world.referral.pk)
    made_up = _probe(world.work_coach, uuid.uuid4())

    assert existing.filter(chain=world.medway).values(*TRACE).get() == made_up.filter(chain=world.medway).values(*TRACE).get()
    assert existing.filter(chain=world.kent, referral_id=world.referral.pk).exists()


def test_another_providers_dpo_cannot_tell_from_their_log_which_ids_exist(world):
    _probe(world.other_provider_therapist, world.referral.pk)
    _probe(world.other_provider_therapist, uuid.uuid4())

    log = api_client(world.other_provider_dpo).get("/api/v1/access-events/?outcome=denied").json()["results"]
    first, second = ({k: v for k, v in e.items() if k not in ("id", "seq", "occurred_at", "prev_hash", "hash", "request")}
                     for e in log[:2])  # fmt: skip
    assert first == second
    assert str(world.referral.pk) not in str(log)

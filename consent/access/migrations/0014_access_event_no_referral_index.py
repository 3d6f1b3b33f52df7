"""The access events lose their index by referral: a referral's history is read through its client's index.

Every event written paid an entry in an index of random referral ids, a page's 50 events 50 scattered pages of it.
Measured at 100,000 referrals on PostgreSQL, dropping it took about 0.9 ms off a list's 50 events (of about 3.8 ms
of logging). Every event about a referral also names its client, so the referral's history, and the DPO's log
filtered by referral, read the (chain, client, seq) index and keep the referral's events among the client's.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0013_access_event_chain_no_lone_index"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="accessevent",
            name="access_event_referral",
        ),
    ]

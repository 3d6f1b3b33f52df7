"""Check that a consent receipt file is what this service signed, unchanged in every field.

    python manage.py verify_consent_receipt receipt.json [--public-key service-public.pem]

Prints "verified" and exits 0, or says why not and exits 1 (see consent/receipts.py for what is signed).
"""

import json

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management.base import BaseCommand, CommandError

from consent.receipts import verify_receipt


class Command(BaseCommand):
    help = "Verify a signed consent receipt (the JSON from GET /api/v1/referrals/{id}/consent-receipt/)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The receipt document, as JSON.")
        parser.add_argument(
            "--public-key",
            help="A PEM file with the public key the service published; defaults to the service's configured key.",
        )

    def handle(self, *args, file, public_key=None, **options):
        # CommandError exits with status 1 and prints the message, which is what a person at a shell needs.
        try:
            with open(file, encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError:
            raise CommandError(f"not verified: no such file {file}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CommandError(f"not verified: {file} is not a JSON document ({error})") from None
        trusted = None
        if public_key:
            try:
                with open(public_key, encoding="ascii") as handle:
                    trusted = handle.read()
            except (OSError, UnicodeDecodeError) as error:
                raise CommandError(f"not verified: cannot read the public key {public_key} ({error})") from None
            try:
                if not isinstance(serialization.load_pem_public_key(trusted.encode("ascii")), Ed25519PublicKey):
                    raise ValueError("not an Ed25519 key")
            except (ValueError, UnsupportedAlgorithm) as error:
                raise CommandError(f"not verified: {public_key} is not an Ed25519 public key in PEM ({error})") from None
        if not isinstance(document, dict) or set(document) != {"receipt", "signature"}:
            raise CommandError('not verified: the file is not a consent receipt (expected {"receipt": ..., "signature": ...})')
        if not verify_receipt(document, public_key=trusted):
            raise CommandError(
                "not verified: the signature does not match the receipt under the trusted key; "
                "the receipt was changed after signing or was not signed by this service"
            )
        self.stdout.write("verified")

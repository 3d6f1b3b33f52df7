"""The benchmark at pilot and national scale (issue 7): `python -m bench.run [--referrals N] [--repeat K]`.

bench.world builds a realistic world of N referrals with bulk inserts; bench.operations measures what a
therapist, a DPO and a verification do through the real stack against the raw SQL that returns the same
rows; bench.run prints the table and writes bench/results/latest.json.
"""

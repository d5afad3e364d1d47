"""Bearer-token verification cost with a cached key: Fleetdeck's strict verifier vs. bare PyJWT.

Target: median ≤ 100 µs per token for RS256 and ES256 (the key already in the JWKS cache).

For each algorithm (RS256 = RSA-2048, ES256 = P-256, EdDSA = Ed25519) the testkit issuer mints
``--tokens`` distinct real tokens, served by its loopback JWKS server; the verifier's cache is warmed
once, so the timed loop never touches the network (checked: one JWKS fetch in total). These cases
are timed per token with ``perf_counter_ns`` (and per batch in process CPU time, which a busy
machine disturbs less). Each of ``--rounds`` passes over the tokens goes ``--chunk`` tokens at a
time, every case timing the chunk in turn, in an order rotated chunk by chunk: this VM's speed
drifts within seconds, and turns of ~10 ms spread that drift evenly over the cases.

- ``signature`` — the signature check alone, as the verifier makes it (the key's bound Tink
  check, :mod:`fleetdeck.auth.signature`): what no verifier on this library can go below.
- ``signature (cryptography)`` — the same check by PyJWT's algorithm object over ``cryptography``
  (OpenSSL), side by side: the library the verifier used before, and a gauge of the VM's phase.
- ``jwt.decode`` — bare PyJWT with the same key, issuer, audience, leeway and required claims, for
  comparison (it is laxer: duplicate members, string dates and header keys pass it).
- ``verify`` — :meth:`JwtVerifier.verify`: pre-parse (size, segments, duplicate-refusing JSON,
  header and date checks), cached key lookup, the signature check, audience and dates, claim
  mapping to ``VerifiedUser``. "over floor" is its median minus the signature check's.
- ``verify_token`` — the SDK hook: ``verify`` plus the ``AccessToken`` model.
- ``verify again`` — ``verify`` of a token verified a moment before (a client's next call with the
  same token): answered from the verifier's cache of recent verifications.

``verify`` and ``verify_token`` start every pass with that cache emptied, so they time the full
check of a token seen for the first time.

Two refusals are timed too: a 1 MiB token (refused on size) and an unknown ``kid`` within the
cooldown (refused without a fetch).

    uv run python bench/bench_jwt.py --json-out bench/results/jwt.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_decode
from rich.console import Console
from rich.table import Table

from fleetdeck.auth.jwt import AuthenticationError, JwtVerifier, UserAuthSettings
from fleetdeck_testkit.identity import JwksServer, TestIssuer

TARGET_MEDIAN_US = 100.0
KINDS = {"RS256": "rsa", "ES256": "ec", "EdDSA": "ed25519"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples_ns: list[int]) -> dict[str, float]:
    us = [s / 1000 for s in samples_ns]
    return {
        "n": len(us),
        "median_us": statistics.median(us),
        "p99_us": percentile(us, 0.99),
        "mean_us": statistics.fmean(us),
        "min_us": min(us),
    }


async def time_async(fn: Callable[[str], Awaitable[Any]], tokens: list[str]) -> list[int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for token in tokens:
        start = clock()
        await fn(token)
        samples.append(clock() - start)
    return samples


def time_sync(fn: Callable[[str], Any], tokens: list[str]) -> list[int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for token in tokens:
        start = clock()
        fn(token)
        samples.append(clock() - start)
    return samples


async def refused(verifier: JwtVerifier, token: str) -> None:
    try:
        await verifier.verify(token)
    except AuthenticationError:
        return
    raise RuntimeError("the token was accepted")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with JwksServer() as server:
        issuer = TestIssuer(server)
        settings = UserAuthSettings(issuer=issuer.issuer, jwks_url=issuer.jwks_url)
        verifier = JwtVerifier(settings, resource_url=issuer.audience)
        try:
            for alg, kind in KINDS.items():
                key = issuer.key(kind)
                tokens = [
                    issuer.mint(f"user{i}", groups=["data-infra"], key=kind) for i in range(args.tokens)
                ]
                await verifier.verify(tokens[0])  # warm the cache (the only fetch)
                public = key.private_key.public_key()

                def floor(token: str, public: Any = public, alg: str = alg) -> Any:
                    return jwt.decode(
                        token,
                        public,
                        algorithms=[alg],
                        audience=issuer.audience,
                        issuer=issuer.issuer,
                        leeway=settings.leeway_s,
                        options={"require": list(settings.required_claims)},
                    )

                algorithm = get_default_algorithms()[alg]
                cached_key = verifier.jwks.fresh(key.kid)
                if cached_key is None:
                    raise RuntimeError("the warmed key is not cached")
                check = cached_key.checks[alg]
                split = [t.rsplit(".", 1) for t in tokens]
                signed = {
                    t: (s[0].encode(), base64url_decode(s[1])) for t, s in zip(tokens, split, strict=True)
                }

                def signature(token: str, check: Any = check, signed: Any = signed) -> None:
                    check(*signed[token])

                def signature_openssl(
                    token: str, public: Any = public, algorithm: Any = algorithm, signed: Any = signed
                ) -> bool:
                    message, sig = signed[token]
                    return bool(algorithm.verify(message, public, sig))

                samples: dict[str, list[int]] = {
                    "signature": [],
                    "signature (cryptography)": [],
                    "jwt.decode": [],
                    "verify": [],
                    "verify_token": [],
                    "verify again": [],
                }
                cpu_ns = dict.fromkeys(samples, 0)
                for _ in range(args.warmup):
                    floor(tokens[0])
                    await verifier.verify(tokens[0])
                gc.collect()
                cases = list(samples)
                chunks = [tokens[i : i + args.chunk] for i in range(0, len(tokens), args.chunk)]
                for turn in range(args.rounds * len(chunks)):
                    chunk = chunks[turn % len(chunks)]
                    shift = turn % len(cases)  # rotated: each case in each position equally often
                    for case in cases[shift:] + cases[:shift]:
                        if case == "verify again":  # every token verified a moment ago (untimed)
                            await time_async(verifier.verify, chunk)
                        cpu_start = time.process_time_ns()
                        if case == "signature":
                            samples[case] += time_sync(signature, chunk)
                        elif case == "signature (cryptography)":
                            samples[case] += time_sync(signature_openssl, chunk)
                        elif case == "jwt.decode":
                            samples[case] += time_sync(floor, chunk)
                        elif case == "verify":
                            verifier.forget_verified()
                            samples[case] += await time_async(verifier.verify, chunk)
                        elif case == "verify_token":
                            verifier.forget_verified()
                            samples[case] += await time_async(verifier.verify_token, chunk)
                        else:  # the per-call cost of a session that keeps its token
                            samples[case] += await time_async(verifier.verify, chunk)
                        cpu_ns[case] += time.process_time_ns() - cpu_start
                results[alg] = {case: summary(values) for case, values in samples.items()}
                for case, total in cpu_ns.items():
                    results[alg][case]["cpu_us_per_token"] = total / len(samples[case]) / 1000

            huge = [issuer.mint(padding="x" * (1 << 20))] * 200
            unknown = [issuer.mint(header_overrides={"kid": uuid.uuid4().hex}) for _ in range(200)]
            results["refusals"] = {
                "huge token (1 MiB)": summary(await time_async(lambda t: refused(verifier, t), huge)),
                "unknown kid (cooldown)": summary(await time_async(lambda t: refused(verifier, t), unknown)),
            }
        finally:
            await verifier.aclose()
        results["jwks_fetches"] = server.fetches
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=1000, help="distinct tokens per algorithm")
    parser.add_argument("--rounds", type=int, default=5, help="passes over all tokens")
    parser.add_argument(
        "--chunk", type=int, default=100, help="tokens per turn: the cases take turns chunk by chunk"
    )
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json-out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    results = asyncio.run(bench(args))

    title = f"JWT verification, cached key ({args.tokens} tokens x {args.rounds} rounds, {args.chunk} a turn)"
    table = Table(title=title)
    for column in ("alg", "case", "median µs", "p99 µs", "mean µs", "CPU µs/token", "over floor", "target"):
        table.add_column(column, justify="left" if column in ("alg", "case") else "right")
    verdicts: dict[str, bool] = {}
    for alg in KINDS:
        floor_median = results[alg]["signature"]["median_us"]
        for case, stats in results[alg].items():
            target = ""
            if case == "verify":
                verdicts[alg] = stats["median_us"] <= TARGET_MEDIAN_US
                target = ("✓" if verdicts[alg] else "✗") + f" ≤ {TARGET_MEDIAN_US:g}"
            over = "" if case.startswith("signature") else f"{stats['median_us'] - floor_median:+.1f}"
            table.add_row(
                alg,
                case,
                f"{stats['median_us']:.1f}",
                f"{stats['p99_us']:.1f}",
                f"{stats['mean_us']:.1f}",
                f"{stats['cpu_us_per_token']:.1f}",
                over,
                target,
            )
    for case, stats in results["refusals"].items():
        table.add_row(
            "refused", case, f"{stats['median_us']:.1f}", f"{stats['p99_us']:.1f}", f"{stats['mean_us']:.1f}"
        )
    Console(width=140).print(table)
    print(f"JWKS fetches during the whole run: {results['jwks_fetches']}")

    document = {
        "benchmark": "jwt",
        "target_median_us": TARGET_MEDIAN_US,
        "target_met": {alg: verdicts[alg] for alg in ("RS256", "ES256")},
        "parameters": {
            "tokens": args.tokens,
            "rounds": args.rounds,
            "chunk": args.chunk,
            "warmup": args.warmup,
        },
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "machine": platform.machine(),
            "pyjwt": metadata.version("pyjwt"),
            "cryptography": metadata.version("cryptography"),
            "tink": metadata.version("tink"),
        },
        "results": results,
    }
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()

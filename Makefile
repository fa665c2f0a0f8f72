# The two commands a new user needs (README.md): `make dev` and `make test`.
.PHONY: dev test build setup unit keys bench devloop

dev:
	bash scripts/dev

test:
	bash scripts/test

build:
	bash scripts/build

setup:
	bash scripts/setup

unit:
	cargo test --workspace
	node --test tests/js/

# Prints a new SESSION_KEYS JWK Set (HS256); `make keys ALG=eddsa` for Ed25519.
keys:
	@cargo run --quiet -p gatehouse-cli -- keygen --alg $(or $(ALG),hs256)

# Benchmark on raw workerd (bench/run.mjs; BENCH_QUICK=1 for a smoke run). Not part of `make test`.
bench:
	node bench/run.mjs

# Times edit → reloaded page in `make dev` for a template and a Rust edit (README "Edit and reload").
devloop:
	bash scripts/setup
	node bench/devloop.mjs

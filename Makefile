# The two commands a new user needs (README.md): `make dev` and `make test`.
.PHONY: dev test build setup unit keys bench devloop model

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

# The load model (docs/scale.md#load-model): one simulated day counted at the store seam, D1
# queries/s by kind for 10^4, 10^6 and 10^7 active users. Not part of `make test` (a small day
# of it is, in cargo test). Parameters: `make model SAMPLE=10000 SEED=7 INTERVAL=600
# USERS_PER_ISOLATE=5000 ISOLATE_CAP=2000`.
model:
	MODEL_SAMPLE=$(SAMPLE) MODEL_SEED=$(SEED) MODEL_INTERVAL=$(INTERVAL) \
	MODEL_USERS_PER_ISOLATE=$(USERS_PER_ISOLATE) MODEL_ISOLATE_CAP=$(ISOLATE_CAP) \
	MODEL_SEEN_BATCH_DELAY=$(SEEN_BATCH_DELAY) cargo test --quiet --profile model --lib -p gatehouse -- \
	  --ignored --exact app::tests::model::print_the_load_model --nocapture

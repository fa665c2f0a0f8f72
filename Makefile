# The two commands a new user needs (README.md): `make dev` and `make test`.
.PHONY: dev test build setup unit keys

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

# Prints a new SESSION_KEYS JWK Set (HS256); `make keys ALG=eddsa` for Ed25519.
keys:
	@cargo run --quiet -p gatehouse-cli -- keygen --alg $(or $(ALG),hs256)

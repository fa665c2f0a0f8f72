# The two commands a new user needs (README.md): `make dev` and `make test`.
.PHONY: dev test build setup unit

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

# Source formatting: the .clang-format at the root, Debian's clang-format 14
# (package clang-format-14). `make format` rewrites the C sources in place;
# `make format-check` changes nothing and fails on any line that differs
# (run by .ci/run).
CLANG_FORMAT ?= clang-format-14
FORMAT_SRCS = $(sort $(wildcard src/*.[ch] src/*/*.[ch] src/*/*/*.[ch] \
                              tests/*/*.[ch]))

.PHONY: format format-check
format:
	$(CLANG_FORMAT) -i $(FORMAT_SRCS)

format-check:
	$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_SRCS)

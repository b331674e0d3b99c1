# mk/deb.mk - `make deb`: the Debian packages of debian/ (preforkd,
# preforkd-python, preforkd-dev, and their -dbgsym) built by
# `dpkg-buildpackage -us -uc -b` from a copy of the working tree, uncommitted
# changes included (not build/, not .git), in $(BUILD)/deb/src: the .deb,
# .changes and .buildinfo files land in $(BUILD)/deb/, the build log in
# $(BUILD)/deb/build.log. The packages are built with PREFIX=/usr
# (debian/rules), whatever PREFIX says here. Check them with
#   lintian --fail-on error $(BUILD)/deb/*.changes
# build-essential, debhelper and dpkg-dev (Debian packages) are installed by
# scripts/install-deps.sh the first time they are needed.

DEB_DIR := $(BUILD)/deb

.PHONY: deb deb-deps

deb-deps:
	$(Q)sh scripts/install-deps.sh build-essential debhelper dpkg-dev

ifeq ($(SANITIZE),1)
deb:
	@echo "make deb builds the packages with Debian's flags: run it without SANITIZE=1" >&2
	@exit 2
else
# The Makefile's VERSION and debian/changelog must agree.
# MAKEFLAGS is not passed on: this make's command-line variables (BUILD,
# PREFIX, ...) and job server must not reach the package build.
deb: | deb-deps
	$(Q)v=$$(dpkg-parsechangelog -l debian/changelog -S Version) && \
	  if [ "$$v" != "$(VERSION)" ]; then \
	    echo "make deb: debian/changelog says $$v, the Makefile VERSION $(VERSION)" >&2; \
	    exit 1; \
	  fi
	$(Q)rm -rf $(DEB_DIR)/src $(DEB_DIR)/*.deb $(DEB_DIR)/*.changes $(DEB_DIR)/*.buildinfo
	$(Q)mkdir -p $(DEB_DIR)/src
	@# Other work may be changing the tree meanwhile: copy what is there.
	$(Q)tar -cf - --exclude=./build --exclude=./$(BUILD) --exclude=./.git \
	  --ignore-failed-read --warning=no-file-changed --warning=no-file-removed . | \
	  tar -xf - -C $(DEB_DIR)/src
	@echo "  DEB     $(DEB_DIR)/ (log: $(DEB_DIR)/build.log)"
	$(Q)(cd $(DEB_DIR)/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	  dpkg-buildpackage -us -uc -b -Jauto) > $(DEB_DIR)/build.log 2>&1 || { \
	  tail -n 40 $(DEB_DIR)/build.log; \
	  echo "make deb: dpkg-buildpackage failed (log: $(DEB_DIR)/build.log)" >&2; \
	  exit 1; }
	$(Q)ls -1 $(DEB_DIR)/*.deb $(DEB_DIR)/*.changes
endif

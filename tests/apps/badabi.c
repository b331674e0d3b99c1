/*
 * badabi.c - test module whose pf_app_entry claims ABI version 999, so
 * that app_open must refuse it with the "rebuild the module" error.
 * Built by hand instead of with PF_APP_DEFINE, which would stamp the
 * current PF_ABI_VERSION. Never runs a request.
 */
#include <preforkd.h>

static int badabi_handle(pf_request *r, void *state)
{
    return -1;
}

PF_EXPORT const struct pf_app pf_app_entry = {
    .abi_version = 999,
    .size = sizeof(struct pf_app),
    .name = "badabi",
    .description = "test: an ABI version this preforkd does not speak",
    .handle = badabi_handle,
};

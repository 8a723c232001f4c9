/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_snap.c - snapshot manifests (untrusted: an imported archive carries
 * one) through snap_manifest_parse(). A manifest that parses must format
 * and parse again to the same text, and duplicate to the same text; the
 * lenient blob-name scan GC uses must never crash either.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot/snap.h"
#include "snapshot/snap_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snap_manifest *m = NULL, *m2 = NULL, *d = NULL;
	struct snap_strset names = {0};
	char err[512], *text = NULL, *text2 = NULL, *text3 = NULL;

	(void)snap_manifest_blob_names((const char *)data, size, &names, err, sizeof(err));
	snap_strset_release(&names);
	if (snap_manifest_parse((const char *)data, size, &m, err, sizeof(err)) < 0)
		return 0;
	text = snap_manifest_format(m);
	if (!text || snap_manifest_parse(text, strlen(text), &m2, err, sizeof(err)) < 0)
		abort(); /* what parsed must format into what parses */
	text2 = snap_manifest_format(m2);
	d = snap_manifest_dup(m);
	text3 = d ? snap_manifest_format(d) : NULL;
	if (!text2 || strcmp(text, text2) || !text3 || strcmp(text, text3))
		abort();
	free(text);
	free(text2);
	free(text3);
	snap_manifest_free(m);
	snap_manifest_free(m2);
	snap_manifest_free(d);
	return 0;
}

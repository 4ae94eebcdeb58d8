/* libFuzzer target: `kiln prewarm --model` descriptions (the fuzz bytes as the file) into
 * spec lines. Any input must expand or fail with a message; the CLI's own code, linked in.
 * Run by scripts/fuzz.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static char path[64];
    if (path[0] == '\0')
        snprintf(path, sizeof path, "/tmp/kiln-fuzz-model-%d", (int)getpid());
    FILE *file = fopen(path, "wb");
    if (file == NULL || fwrite(data, 1, size, file) != size || fclose(file) != 0)
        abort();
    cli_lines lines = {0};
    cli_model_expand(path, &lines);
    cli_lines_free(&lines);
    return 0;
}

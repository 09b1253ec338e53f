/* slave_files.c — the slave's versions of the master-only builtins of SPEC
 * 12.1 and 12.2 (master_files.c): the program's one object file calls them
 * from its master block, so both libraries define them, but typecheck keeps
 * them out of everything a job can reach, so a slave never calls them. */
#include "log.h"
#include "ms_abi.h"

static _Noreturn void master_only(const char *what)
{
    ms_fatal("internal error: %s called in a slave", what);
}

ms_vec *ms_args(void)
{
    master_only("ms_args");
}

ms_vec *ms_read_stdin(int32_t line, int32_t col)
{
    (void)line;
    (void)col;
    master_only("ms_read_stdin");
}

void ms_write_file(const ms_vec *path, const ms_vec *data, int32_t line,
                   int32_t col)
{
    (void)path;
    (void)data;
    (void)line;
    (void)col;
    master_only("ms_write_file");
}

/*
 * cmd.h — command-line subcommands other than serve (cli/cmd_*.c).
 */
#ifndef CLI_CMD_H
#define CLI_CMD_H

struct config;

/* "regmirror cache SUB [options] [args]": argv[0] is SUB.  Exit status. */
int	cmd_cache(const struct config *, int argc, char **argv);
/* "regmirror sync [POLICY] [--mirror URL] [--wait]": cfg may be NULL. */
int	cmd_sync(const struct config *, int argc, char **argv);
/* "regmirror prefetch [options] IMAGE...": cfg may be NULL. */
int	cmd_prefetch(const struct config *, int argc, char **argv);

#endif

/*
 * commands.h - the petrel subcommands.  Each takes the arguments after its
 * name (argv[0] is the subcommand name) and returns the process exit
 * status (see exit_codes.h).
 */
#ifndef PETREL_CLI_COMMANDS_H
#define PETREL_CLI_COMMANDS_H

int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_admin(int argc, char **argv);

#endif

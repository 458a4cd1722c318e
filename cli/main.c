/*
 * main.c - the petrel command: dispatches to a subcommand (cmd_*.c), and
 * answers --help and --version itself.  Adding a subcommand means one
 * cmd_NAME.c file and one line in the table below.
 */
#include <stdio.h>
#include <string.h>

#include <petrel.h>

#include "commands.h"
#include "exit_codes.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"pub", cmd_pub, "publish a message, or one per line of stdin"},
    {"sub", cmd_sub, "subscribe and print messages as they arrive"},
    {"bench", cmd_bench, "load a broker with many clients; report throughput and latency"},
    {"passwd", cmd_passwd, "add, change or delete a user in a petreld password file"},
    {"admin", cmd_admin, "petreld's admin API: clients, sessions, retained, stats, reload"},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: petrel COMMAND [OPTIONS]\n"
                 "The Petrel MQTT command-line client; works with any MQTT 3.1.1 broker.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-6s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "  petrel COMMAND --help   options of a command\n"
                 "  petrel --version        show the version\n\n"
                 "%s",
            EXIT_CODES_HELP);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2) {
            /* `petrel help pub` = `petrel pub --help` */
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
                if (strcmp(argv[2], commands[i].name) == 0) {
                    char *args[] = {argv[2], "--help", NULL};
                    return commands[i].run(2, args);
                }
            }
        }
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("petrel %s (libpetrel %s, MQTT 3.1.1)\n", PETREL_VERSION, petrel_version());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "petrel: unknown command '%s'\n\n", name);
    usage(stderr);
    return CLI_EXIT_USAGE;
}

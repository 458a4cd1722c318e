/*
 * temp_file.h - files the unit tests load: a configuration, an ACL or a
 * password file with given contents, made under $TMPDIR (or /tmp) and
 * removed again.  Include after <cmocka.h>: failures end the test.
 */
#ifndef PETREL_TEST_TEMP_FILE_H
#define PETREL_TEST_TEMP_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A new file petrel-<what>-XXXXXX holding the len bytes of text; returns
 * its path (malloc'd), to be given to temp_file_remove(). */
static inline char *temp_file(const char *what, const char *text, size_t len)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    size_t n = strlen(dir) + strlen(what) + 32;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/petrel-%s-XXXXXX", dir, what);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static inline void temp_file_remove(char *path)
{
    unlink(path);
    free(path);
}

/* Asserts that a loader's error message is the file's path then suffix
 * (e.g. ":2: expected 'user:hash'"). */
static inline void assert_path_error(const char *err, const char *path, const char *suffix)
{
    size_t plen = strlen(path);
    if (strncmp(err, path, plen) != 0 || strcmp(err + plen, suffix) != 0)
        fail_msg("error '%s', expected 'PATH%s'", err, suffix);
}

/* Writes text to a file, sets result to loader(path, err, cap), asserts
 * that it is not NULL and removes the file. */
#define LOAD_OK(result, loader, what, text)                               \
    do {                                                                  \
        char *path_ = temp_file((what), (text), strlen(text));            \
        char err_[512] = "";                                              \
        (result) = (loader)(path_, err_, sizeof err_);                    \
        temp_file_remove(path_);                                          \
        if (!(result))                                                    \
            fail_msg("refused: %s", err_);                                \
    } while (0)

/* Writes text to a file, asserts that loader(path, err, cap) refuses it
 * (returns NULL) with the message path + suffix, and removes the file.
 * A macro: the loaders return different types. */
#define EXPECT_LOAD_ERROR(loader, what, text, suffix)                     \
    do {                                                                  \
        char *path_ = temp_file((what), (text), strlen(text));            \
        char err_[512] = "";                                              \
        if ((loader)(path_, err_, sizeof err_))                           \
            fail_msg("accepted:\n%s", (text));                            \
        assert_path_error(err_, path_, (suffix));                         \
        temp_file_remove(path_);                                          \
    } while (0)

#endif

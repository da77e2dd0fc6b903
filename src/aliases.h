/*
 * aliases.h - the aliases file (SPEC section 4) as an immutable table.
 *
 * aliases_load() reads an aliases(5) file and the files it :include:s into a
 * table of literal names (sorted, found by binary search) and /regex/ names
 * (kept in file order), each target remembering the file:line it came from.
 * Commands are split into argv here, once, from the administrator's text;
 * envelope data never enters a command (SPEC section 7).  Errors are reported
 * as file:line through a struct diag and make the load fail as a whole, so a
 * broken new file never replaces a good one.
 *
 * Lookups have three outcomes: found (1), not found (0), temporary error
 * (-1, e.g. a regex that hit its match limit): STYLE habit 9.
 */
#ifndef ALIASES_H
#define ALIASES_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "util.h"

#define ALIAS_MAX_DEPTH 10       /* alias -> alias nesting */
#define ALIAS_MAX_CAPTURES 16
#define ALIAS_CAPTURE_MAX 256

enum alias_target_kind { TARGET_PIPE, TARGET_ADDRESS, TARGET_NAME };

struct alias_cmd {
	char *text;        /* the command as written, after '|' */
	char **argv;       /* NULL-terminated; /bin/sh -c text when use_shell */
	int use_shell;
	int has_captures;  /* $1..$9 / ${name} inside argv elements */
};

struct alias_target {
	enum alias_target_kind kind;
	char *text;        /* address, or lower-cased alias name; the command text */
	struct alias_cmd cmd;
	const char *file;  /* owned by the table */
	int line;
	int trusted;       /* its file may name programs (owner and mode checked) */
};

struct alias_entry {
	char *name;        /* lower-cased literal name, or the regex source */
	void *re;          /* pcre2_code *, NULL for literal names */
	int whole_address; /* regex contains '@': matched against the address */
	struct alias_target *targets;
	size_t ntargets;
	const char *file;
	int line;
};

struct alias_file {
	char *path;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	struct timespec ctime;     /* a chown or chmod changes whether it is trusted */
	off_t size;
	int trusted;
};

struct aliases {
	struct alias_entry *literal;   /* sorted by name */
	size_t nliteral;
	struct alias_entry *regex;     /* file order */
	size_t nregex;
	struct alias_file *files;      /* the main file first, then includes */
	size_t nfiles;
	size_t untrusted_pipes;        /* pipe targets in files that may not name programs */
	void *match_context;           /* pcre2_match_context * with limits */
};

struct alias_captures {
	size_t n;                      /* numbered captures $1..$9 present */
	char num[10][ALIAS_CAPTURE_MAX];
	size_t nnamed;
	char name[ALIAS_MAX_CAPTURES][32];
	char named[ALIAS_MAX_CAPTURES][ALIAS_CAPTURE_MAX];
};

/*
 * aliases_load - path is the main file; trusted_uid is the account, besides
 * root, that may own files naming programs.  NULL after reporting to d.
 */
struct aliases *aliases_load(const char *path, uid_t trusted_uid, struct diag *d);
void aliases_free(struct aliases *a);
/* aliases_changed - 1 when any file of the table changed on disk. */
int aliases_changed(const struct aliases *a);

/* aliases_find - literal lookup of a lower-cased key. */
const struct alias_entry *aliases_find(const struct aliases *a, const char *key);
/*
 * aliases_match_regex - first regex entry matching; local is the local part
 * with its extension, address the whole address, both as the sender wrote
 * them: matched in lower case, captures kept in the sender's case.  1 found
 * (captures filled), 0 none, -1 temporary failure (match limit hit).
 */
int aliases_match_regex(const struct aliases *a, const char *local,
    const char *address, const struct alias_entry **entry,
    struct alias_captures *caps);
/*
 * aliases_expand_arg - substitute $1..$9 / ${name} in one argv element.
 * Returns 0, or -1 when the result does not fit.
 */
int aliases_expand_arg(const char *arg, const struct alias_captures *caps,
    char *out, size_t outsize);

#endif

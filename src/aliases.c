/*
 * aliases.c - aliases(5) parser, table, lookups and reload check.
 *
 * Syntax (SPEC section 4): "name: value, value"; '#' comments; a line that
 * starts with white space continues the previous one, also inside a quoted
 * command; values may be double-quoted with \" and \\; "|cmd" pipes,
 * user@domain forwards, bare names (other aliases), ":include:/path";
 * "/regex/[i]: value" keys tried in file order after literal names.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "aliases.h"
#include "addr.h"
#include "log.h"
#include "safepath.h"

#include <errno.h>
#include <fcntl.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIASES_MAX_FILE (16L * 1024 * 1024)
#define ALIASES_MAX_LINE (64 * 1024)
#define ALIASES_MAX_INCLUDE_DEPTH 5
#define ALIASES_MAX_VALUES 1024
#define REGEX_MATCH_LIMIT 100000
#define REGEX_DEPTH_LIMIT 1000

/* Characters that make a command need /bin/sh (capture references excepted). */
static const char shell_meta[] = "\"'`\\$&|;()<>*?[]{}~!#\n";

struct loader {
	struct aliases *a;
	struct diag *d;
	uid_t trusted_uid;
	size_t cap_literal, cap_regex;
};

static int load_file(struct loader *ld, const char *path, int depth,
    struct alias_target **targets, size_t *ntargets, size_t *cap, int values_only,
    const char *from_file, int from_line);

/* file_register - remember a file for reload checks and judge its trust. */
static struct alias_file *
file_register(struct loader *ld, const char *path, const struct stat *st)
{
	struct aliases *a = ld->a;
	struct alias_file *f;

	a->files = xreallocarray(a->files, a->nfiles + 1, sizeof(*a->files));
	f = &a->files[a->nfiles++];
	f->path = xstrdup(path);
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->mtime = st->st_mtim;
	f->ctime = st->st_ctim;
	f->size = st->st_size;
	/* SPEC 7: owned by root or our own account, writable by no one else. */
	f->trusted = (st->st_uid == 0 || st->st_uid == ld->trusted_uid) &&
	    (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
	return f;
}

static char *
read_whole(struct loader *ld, const char *path, const char *from_file,
    int from_line, struct alias_file **fout)
{
	char why[600];
	/* Read as root by the launcher: never through someone else's link. */
	int fd = safepath_open_file(path, O_RDONLY | O_NOCTTY, 0, why, sizeof(why));
	struct stat st;
	char *buf;
	size_t off = 0;

	if (fd < 0) {
		diag_error(ld->d, from_file ? from_file : path, from_line,
		    "cannot open %s: %s", why, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		diag_error(ld->d, path, 0, "cannot stat: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > ALIASES_MAX_FILE) {
		diag_error(ld->d, path, 0, "%s", !S_ISREG(st.st_mode) ?
		    "not a regular file" : "file too large (16 MiB at most)");
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			diag_error(ld->d, path, 0, "cannot read: %s",
			    n < 0 ? strerror(errno) : "file shrank while reading");
			free(buf);
			close(fd);
			return NULL;
		}
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	if (memchr(buf, '\0', off) != NULL) {
		diag_error(ld->d, path, 0, "file contains a NUL byte");
		free(buf);
		return NULL;
	}
	*fout = file_register(ld, path, &st);
	return buf;
}

/* intern_path - the table's own copy of a file name for provenance. */
static const char *
intern_path(struct loader *ld, const char *path)
{
	for (size_t i = 0; i < ld->a->nfiles; i++)
		if (strcmp(ld->a->files[i].path, path) == 0)
			return ld->a->files[i].path;
	return NULL;
}

static int
is_capture_ref(const char *p, size_t *len)
{
	if (p[0] != '$')
		return 0;
	if (p[1] >= '1' && p[1] <= '9') {
		*len = 2;
		return 1;
	}
	if (p[1] == '{') {
		size_t k = 2;

		while ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
		    (p[k] >= '0' && p[k] <= '9') || p[k] == '_')
			k++;
		if (p[k] == '}' && k > 2 && k - 2 < 32) {
			*len = k + 1;
			return 1;
		}
	}
	return 0;
}

/* split_command - argv from the administrator's text; decide on the shell. */
static int
split_command(struct loader *ld, const char *file, int line, const char *text,
    struct alias_cmd *cmd)
{
	size_t n = 0, reflen;
	int meta = 0, refs = 0;
	char *copy, *save = NULL;

	for (const char *p = text; *p; p++) {
		if (is_capture_ref(p, &reflen)) {
			refs = 1;
			p += reflen - 1;
		} else if (strchr(shell_meta, *p)) {
			meta = 1;
		}
	}
	cmd->text = xstrdup(text);
	cmd->has_captures = refs;
	if (meta && refs) {
		diag_error(ld->d, file, line, "command needs the shell (it has shell "
		    "metacharacters) and uses a capture reference: captures are only "
		    "allowed in commands run without a shell");
		return -1;
	}
	if (meta) {
		cmd->use_shell = 1;
		cmd->argv = xcalloc(4, sizeof(char *));
		cmd->argv[0] = xstrdup("/bin/sh");
		cmd->argv[1] = xstrdup("-c");
		cmd->argv[2] = xstrdup(text);
		return 0;
	}
	copy = xstrdup(text);
	cmd->argv = xcalloc(1, sizeof(char *));
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		cmd->argv = xreallocarray(cmd->argv, n + 2, sizeof(char *));
		cmd->argv[n++] = xstrdup(w);
		cmd->argv[n] = NULL;
	}
	free(copy);
	if (n == 0) {
		diag_error(ld->d, file, line, "empty command after '|'");
		return -1;
	}
	if (is_capture_ref(cmd->argv[0], &reflen) || strstr(cmd->argv[0], "$")) {
		diag_error(ld->d, file, line, "the program name may not hold a capture reference");
		return -1;
	}
	return 0;
}

static int
has_any_capture_ref(const char *s)
{
	size_t len;

	for (; *s; s++)
		if (is_capture_ref(s, &len))
			return 1;
	return 0;
}

/* add_target - classify one value and append it (or the targets it includes). */
static int
add_target(struct loader *ld, const char *file, int line, int trusted,
    const char *value, int depth, struct alias_target **targets, size_t *n,
    size_t *cap)
{
	struct alias_target t;

	memset(&t, 0, sizeof(t));
	t.file = intern_path(ld, file);
	t.line = line;
	t.trusted = trusted;
	if (value[0] == '\0') {
		diag_error(ld->d, file, line, "empty value");
		return -1;
	}
	if (strncmp(value, ":include:", 9) == 0) {
		const char *path = value + 9;

		while (*path == ' ' || *path == '\t')
			path++;
		if (path[0] != '/') {
			diag_error(ld->d, file, line, ":include: needs an absolute path");
			return -1;
		}
		if (depth >= ALIASES_MAX_INCLUDE_DEPTH) {
			diag_error(ld->d, file, line, ":include: nested too deeply (%d levels)",
			    ALIASES_MAX_INCLUDE_DEPTH);
			return -1;
		}
		return load_file(ld, path, depth + 1, targets, n, cap, 1, file, line);
	}
	if (*n >= ALIASES_MAX_VALUES) {
		diag_error(ld->d, file, line, "too many values (at most %d)", ALIASES_MAX_VALUES);
		return -1;
	}
	if (value[0] == '|') {
		const char *cmd = value + 1;

		while (*cmd == ' ' || *cmd == '\t')
			cmd++;
		t.kind = TARGET_PIPE;
		if (split_command(ld, file, line, cmd, &t.cmd) < 0) {
			free(t.cmd.text);
			if (t.cmd.argv)
				for (char **v = t.cmd.argv; *v; v++)
					free(*v);
			free(t.cmd.argv);
			return -1;
		}
		t.text = xstrdup(cmd);
		if (!trusted)
			ld->a->untrusted_pipes++;
	} else if (value[0] == '/') {
		diag_error(ld->d, file, line, "delivery to a file (%s) is not supported; "
		    "use a pipe alias", value);
		return -1;
	} else {
		struct addr parsed;

		if (has_any_capture_ref(value)) {
			diag_error(ld->d, file, line, "capture references are only allowed "
			    "in commands run without a shell: %s", value);
			return -1;
		}
		if (addr_parse_plain(value, &parsed) != ADDR_OK) {
			diag_error(ld->d, file, line, "not an address or alias name: %s", value);
			return -1;
		}
		t.kind = parsed.domain[0] ? TARGET_ADDRESS : TARGET_NAME;
		t.text = xstrdup(value);
		if (t.kind == TARGET_NAME)
			str_lower(t.text);
		else {
			/* Keep the local part as written, fold the domain. */
			char *at = strrchr(t.text, '@');

			str_lower(at);
		}
	}
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		*targets = xreallocarray(*targets, *cap, sizeof(**targets));
	}
	(*targets)[(*n)++] = t;
	return 0;
}

/*
 * split_values - comma-separated values of one logical line, honouring
 * double quotes with \" and \\ escapes.
 */
static int
split_values(struct loader *ld, const char *file, int line, int trusted,
    const char *s, int depth, struct alias_target **targets, size_t *n, size_t *cap)
{
	char *val = xmalloc(strlen(s) + 1);
	int rc = 0;

	while (*s) {
		size_t o = 0;
		int quoted = 0;

		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (*s == '\0')
			break;
		if (*s == '"') {
			quoted = 1;
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				val[o++] = *s == '\n' ? ' ' : *s;
			}
			if (*s != '"') {
				diag_error(ld->d, file, line, "unterminated quoted value");
				rc = -1;
				break;
			}
			s++;
			while (*s == ' ' || *s == '\t' || *s == '\n')
				s++;
			if (*s && *s != ',') {
				diag_error(ld->d, file, line, "text after a quoted value: %.40s", s);
				rc = -1;
				break;
			}
		} else {
			for (; *s && *s != ','; s++)
				val[o++] = *s == '\n' ? ' ' : *s;
			while (o > 0 && (val[o - 1] == ' ' || val[o - 1] == '\t'))
				o--;
		}
		val[o] = '\0';
		(void)quoted;
		if (add_target(ld, file, line, trusted, val, depth, targets, n, cap) < 0)
			rc = -1;
		if (*s == ',')
			s++;
	}
	free(val);
	return rc;
}

static void
free_targets(struct alias_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].text);
		free(t[i].cmd.text);
		if (t[i].cmd.argv)
			for (char **v = t[i].cmd.argv; *v; v++)
				free(*v);
		free(t[i].cmd.argv);
	}
	free(t);
}

/* parse_key - "name:" or "/regex/[i]:" at the start of a logical line. */
static int
add_entry(struct loader *ld, const char *file, int line, int trusted,
    char *logical, int depth)
{
	struct alias_entry e;
	char *p = logical, *key;
	size_t cap = 0;
	int rc;

	memset(&e, 0, sizeof(e));
	e.file = intern_path(ld, file);
	e.line = line;
	if (*p == '/') {
		int caseless = 0, errcode;
		PCRE2_SIZE erroff;
		char *src;
		size_t o = 0;

		src = xmalloc(strlen(p) + 1);
		for (p++; *p && *p != '/'; p++) {
			if (*p == '\\' && p[1] == '/')
				p++;
			src[o++] = *p;
		}
		src[o] = '\0';
		if (*p != '/') {
			diag_error(ld->d, file, line, "regex key without closing '/'");
			free(src);
			return -1;
		}
		p++;
		if (*p == 'i') {
			caseless = 1;
			p++;
		}
		if (*p != ':') {
			diag_error(ld->d, file, line, "expected ':' after /regex/");
			free(src);
			return -1;
		}
		p++;
		e.re = pcre2_compile((PCRE2_SPTR)src, PCRE2_ZERO_TERMINATED,
		    caseless ? PCRE2_CASELESS : 0, &errcode, &erroff, NULL);
		if (e.re == NULL) {
			PCRE2_UCHAR msg[256];

			pcre2_get_error_message(errcode, msg, sizeof(msg));
			diag_error(ld->d, file, line, "bad regex /%s/ at offset %zu: %s",
			    src, (size_t)erroff, (char *)msg);
			free(src);
			return -1;
		}
		e.whole_address = strchr(src, '@') != NULL;
		e.name = src;
	} else {
		key = p;
		while (*p && *p != ':' && *p != ' ' && *p != '\t')
			p++;
		if (p == key) {
			diag_error(ld->d, file, line, "line does not start with a name");
			return -1;
		}
		e.name = xstrndup(key, (size_t)(p - key));
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != ':') {
			diag_error(ld->d, file, line, "expected ':' after the name '%s'", e.name);
			free(e.name);
			return -1;
		}
		p++;
		str_lower(e.name);
		/* A trailing dot on a full-address key is the same domain. */
		if (strchr(e.name, '@')) {
			size_t len = strlen(e.name);

			while (len > 0 && e.name[len - 1] == '.')
				e.name[--len] = '\0';
		}
	}
	rc = split_values(ld, file, line, trusted, p, depth, &e.targets, &e.ntargets, &cap);
	if (rc == 0 && e.ntargets == 0) {
		diag_error(ld->d, file, line, "alias '%s' has no value", e.name);
		rc = -1;
	}
	if (rc < 0) {
		free(e.name);
		if (e.re)
			pcre2_code_free(e.re);
		free_targets(e.targets, e.ntargets);
		return -1;
	}
	if (e.re) {
		if (ld->a->nregex == ld->cap_regex) {
			ld->cap_regex = ld->cap_regex ? ld->cap_regex * 2 : 8;
			ld->a->regex = xreallocarray(ld->a->regex, ld->cap_regex, sizeof(e));
		}
		ld->a->regex[ld->a->nregex++] = e;
	} else {
		if (ld->a->nliteral == ld->cap_literal) {
			ld->cap_literal = ld->cap_literal ? ld->cap_literal * 2 : 64;
			ld->a->literal = xreallocarray(ld->a->literal, ld->cap_literal, sizeof(e));
		}
		ld->a->literal[ld->a->nliteral++] = e;
	}
	return 0;
}

/*
 * load_file - read one file.  values_only: an :include: file, whose lines
 * (each one, indented or not) hold values appended to *targets; otherwise
 * "name: values" lines with indented continuation lines.
 */
static int
load_file(struct loader *ld, const char *path, int depth,
    struct alias_target **targets, size_t *ntargets, size_t *cap, int values_only,
    const char *from_file, int from_line)
{
	struct alias_file *f;
	char *text = read_whole(ld, path, from_file, from_line, &f);
	char *logical;
	size_t llen = 0;
	int rc = 0, line = 0, start_line = 0, trusted;
	const char *fname;

	if (text == NULL)
		return -1;
	trusted = f->trusted;
	fname = f->path;
	logical = xmalloc(ALIASES_MAX_LINE + 1);
	for (char *p = text; ; ) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		int at_end = (nl == NULL);
		const char *first = p;

		line++;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		while (first < p + len && (*first == ' ' || *first == '\t'))
			first++;
		if (first == p + len || *first == '#') {
			/* blank or comment: ends nothing, continues nothing */
		} else if ((p[0] == ' ' || p[0] == '\t') && llen > 0 && !values_only) {
			if (llen + 1 + len > ALIASES_MAX_LINE) {
				diag_error(ld->d, fname, line, "logical line too long");
				rc = -1;
			} else {
				logical[llen++] = '\n';
				memcpy(logical + llen, p, len);
				llen += len;
			}
		} else if ((p[0] == ' ' || p[0] == '\t') && !values_only) {
			diag_error(ld->d, fname, line, "continuation line with nothing to continue");
			rc = -1;
		} else {
			if (llen > 0) {
				logical[llen] = '\0';
				if ((values_only ? split_values(ld, fname, start_line, trusted,
				    logical, depth, targets, ntargets, cap)
				    : add_entry(ld, fname, start_line, trusted, logical, depth)) < 0)
					rc = -1;
			}
			llen = 0;
			start_line = line;
			if (len > ALIASES_MAX_LINE) {
				diag_error(ld->d, fname, line, "line too long");
				rc = -1;
			} else {
				memcpy(logical, p, len);
				llen = len;
			}
		}
		if (at_end)
			break;
		p = nl + 1;
	}
	if (llen > 0) {
		logical[llen] = '\0';
		if ((values_only ? split_values(ld, fname, start_line, trusted, logical,
		    depth, targets, ntargets, cap)
		    : add_entry(ld, fname, start_line, trusted, logical, depth)) < 0)
			rc = -1;
	}
	free(logical);
	free(text);
	return rc;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct alias_entry *)a)->name,
	    ((const struct alias_entry *)b)->name);
}

const struct alias_entry *
aliases_find(const struct aliases *a, const char *key)
{
	struct alias_entry k;

	if (a == NULL || a->nliteral == 0)
		return NULL;
	memset(&k, 0, sizeof(k));
	k.name = (char *)(uintptr_t)key;
	return bsearch(&k, a->literal, a->nliteral, sizeof(k), entry_cmp);
}

/* check_loops - depth-first walk of name targets among literal entries. */
static int
walk(const struct aliases *a, const struct alias_entry *e, int depth,
    const struct alias_entry **path, struct diag *d)
{
	for (int i = 0; i < depth; i++)
		if (path[i] == e) {
			diag_error(d, e->file, e->line, "alias loop: '%s' expands to itself",
			    e->name);
			return -1;
		}
	if (depth >= ALIAS_MAX_DEPTH) {
		diag_error(d, e->file, e->line, "alias '%s' nests more than %d levels",
		    e->name, ALIAS_MAX_DEPTH);
		return -1;
	}
	path[depth] = e;
	for (size_t i = 0; i < e->ntargets; i++) {
		const struct alias_entry *next;

		if (e->targets[i].kind != TARGET_NAME)
			continue;
		next = aliases_find(a, e->targets[i].text);
		if (next != NULL && walk(a, next, depth + 1, path, d) < 0)
			return -1;
	}
	return 0;
}

static int
check_table(struct aliases *a, struct diag *d)
{
	const struct alias_entry *path[ALIAS_MAX_DEPTH + 1];
	int rc = 0;

	for (size_t i = 1; i < a->nliteral; i++)
		if (strcmp(a->literal[i - 1].name, a->literal[i].name) == 0) {
			diag_error(d, a->literal[i].file, a->literal[i].line,
			    "duplicate alias '%s' (also at %s:%d)", a->literal[i].name,
			    a->literal[i - 1].file, a->literal[i - 1].line);
			rc = -1;
		}
	for (size_t i = 0; i < a->nliteral; i++)
		if (walk(a, &a->literal[i], 0, path, d) < 0)
			rc = -1;
	return rc;
}

struct aliases *
aliases_load(const char *path, uid_t trusted_uid, struct diag *d)
{
	struct loader ld;
	int before = d->errors;
	pcre2_match_context *mctx;

	memset(&ld, 0, sizeof(ld));
	ld.a = xcalloc(1, sizeof(*ld.a));
	ld.d = d;
	ld.trusted_uid = trusted_uid;
	load_file(&ld, path, 0, NULL, NULL, NULL, 0, NULL, 0);
	if (ld.a->nliteral > 1)
		qsort(ld.a->literal, ld.a->nliteral, sizeof(struct alias_entry), entry_cmp);
	/* Duplicates and loops are reported even when lines above were broken. */
	check_table(ld.a, d);
	mctx = pcre2_match_context_create(NULL);
	if (mctx == NULL)
		fatalx("pcre2_match_context_create: out of memory");
	/* Bound every match: a catastrophic pattern becomes a 451, not a hang. */
	pcre2_set_match_limit(mctx, REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(mctx, REGEX_DEPTH_LIMIT);
	pcre2_set_heap_limit(mctx, 20 * 1024);   /* KiB */
	ld.a->match_context = mctx;
	if (d->errors != before) {
		aliases_free(ld.a);
		return NULL;
	}
	return ld.a;
}

static void
free_entries(struct alias_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		if (e[i].re)
			pcre2_code_free(e[i].re);
		free_targets(e[i].targets, e[i].ntargets);
	}
	free(e);
}

void
aliases_free(struct aliases *a)
{
	if (a == NULL)
		return;
	free_entries(a->literal, a->nliteral);
	free_entries(a->regex, a->nregex);
	for (size_t i = 0; i < a->nfiles; i++)
		free(a->files[i].path);
	free(a->files);
	if (a->match_context)
		pcre2_match_context_free(a->match_context);
	free(a);
}

int
aliases_changed(const struct aliases *a)
{
	for (size_t i = 0; i < a->nfiles; i++) {
		const struct alias_file *f = &a->files[i];
		struct stat st;

		if (stat(f->path, &st) < 0)
			return 1;
		if (st.st_dev != f->dev || st.st_ino != f->ino || st.st_size != f->size ||
		    st.st_mtim.tv_sec != f->mtime.tv_sec ||
		    st.st_mtim.tv_nsec != f->mtime.tv_nsec ||
		    st.st_ctim.tv_sec != f->ctime.tv_sec ||
		    st.st_ctim.tv_nsec != f->ctime.tv_nsec)
			return 1;
	}
	return 0;
}

static void
fill_captures(const struct alias_entry *e, pcre2_match_data *md, const char *subject,
    struct alias_captures *caps)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	uint32_t count = pcre2_get_ovector_count(md), namecount, entrysize;
	PCRE2_SPTR table;

	memset(caps, 0, sizeof(*caps));
	for (uint32_t i = 1; i < count && i <= 9; i++) {
		if (ov[2 * i] == PCRE2_UNSET)
			continue;
		size_t len = ov[2 * i + 1] - ov[2 * i];

		if (len >= ALIAS_CAPTURE_MAX)
			len = ALIAS_CAPTURE_MAX - 1;
		memcpy(caps->num[i], subject + ov[2 * i], len);
		caps->num[i][len] = '\0';
		caps->n = i;
	}
	pcre2_pattern_info(e->re, PCRE2_INFO_NAMECOUNT, &namecount);
	pcre2_pattern_info(e->re, PCRE2_INFO_NAMEENTRYSIZE, &entrysize);
	pcre2_pattern_info(e->re, PCRE2_INFO_NAMETABLE, &table);
	for (uint32_t i = 0; i < namecount && caps->nnamed < ALIAS_MAX_CAPTURES; i++) {
		const unsigned char *ent = table + i * entrysize;
		unsigned idx = (unsigned)(ent[0] << 8 | ent[1]);
		size_t len;

		if (idx >= count || ov[2 * idx] == PCRE2_UNSET)
			continue;
		len = ov[2 * idx + 1] - ov[2 * idx];
		if (len >= ALIAS_CAPTURE_MAX)
			len = ALIAS_CAPTURE_MAX - 1;
		str_copy(caps->name[caps->nnamed], sizeof(caps->name[0]), (const char *)ent + 2);
		memcpy(caps->named[caps->nnamed], subject + ov[2 * idx], len);
		caps->named[caps->nnamed][len] = '\0';
		caps->nnamed++;
	}
}

int
aliases_match_regex(const struct aliases *a, const char *local,
    const char *address, const struct alias_entry **entry,
    struct alias_captures *caps)
{
	/*
	 * Names are case-insensitive (SPEC 4): the patterns see the address in
	 * lower case, as they always did; the captures are copied from the
	 * address as the sender wrote it (ASCII lower-casing keeps every byte
	 * where it was), so a program gets RT-Foo, not rt-foo.
	 */
	char lower_local[ADDR_LOCAL_MAX + 1], lower_address[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 260];

	if (str_copy(lower_local, sizeof(lower_local), local) < 0 ||
	    str_copy(lower_address, sizeof(lower_address), address) < 0)
		return 0;                 /* longer than any address: no alias */
	str_lower(lower_local);
	str_lower(lower_address);
	for (size_t i = 0; a != NULL && i < a->nregex; i++) {
		const struct alias_entry *e = &a->regex[i];
		const char *subject = e->whole_address ? lower_address : lower_local;
		const char *as_sent = e->whole_address ? address : local;
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(e->re, NULL);
		int rc;

		if (md == NULL)
			return -1;
		rc = pcre2_match(e->re, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md,
		    a->match_context);
		if (rc >= 0) {
			fill_captures(e, md, as_sent, caps);
			pcre2_match_data_free(md);
			*entry = e;
			return 1;
		}
		pcre2_match_data_free(md);
		if (rc != PCRE2_ERROR_NOMATCH) {
			PCRE2_UCHAR why[128];

			if (pcre2_get_error_message(rc, why, sizeof(why)) < 0)
				str_copy((char *)why, sizeof(why), "unknown error");
			log_warnx("aliases %s:%d: regex /%s/ on '%s': %s: temporary failure",
			    e->file, e->line, e->name, subject, (char *)why);
			*entry = e;
			return -1;
		}
	}
	return 0;
}

int
aliases_expand_arg(const char *arg, const struct alias_captures *caps,
    char *out, size_t outsize)
{
	size_t o = 0, reflen;

	for (const char *p = arg; *p; ) {
		const char *val = NULL;

		if (is_capture_ref(p, &reflen)) {
			if (p[1] != '{') {
				val = caps->num[p[1] - '0'];
			} else {
				val = "";
				for (size_t i = 0; i < caps->nnamed; i++)
					if (strlen(caps->name[i]) == reflen - 3 &&
					    strncmp(caps->name[i], p + 2, reflen - 3) == 0)
						val = caps->named[i];
			}
			size_t vlen = strlen(val);

			if (o + vlen >= outsize)
				return -1;
			memcpy(out + o, val, vlen);
			o += vlen;
			p += reflen;
			continue;
		}
		if (o + 1 >= outsize)
			return -1;
		out[o++] = *p++;
	}
	out[o] = '\0';
	return 0;
}

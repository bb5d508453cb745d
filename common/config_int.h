/*
 * config_int.h — private to common/config.c (the INI reader) and
 * common/config_schema.c (the key table and what each value may be): the
 * sections, a row of the table, and the parser state that setters report
 * their errors through.
 */
#ifndef COMMON_CONFIG_INT_H
#define COMMON_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct config_upstream;
struct config_replication;

/*
 * The sections: enum, name in brackets, and for a section that takes a
 * quoted name an example of one (in errors and --print-defaults).
 */
#define CONFIG_SECTIONS(X)						\
	X(NONE,		"",		NULL)				\
	X(SERVER,	"server",	NULL)				\
	X(CACHE,	"cache",	NULL)				\
	X(TIMEOUTS,	"timeouts",	NULL)				\
	X(UPSTREAM,	"upstream",	"registry.example.com")		\
	X(REPLICATION,	"replication",	"prod-images")			\
	X(AUTH,		"auth",		NULL)				\
	X(ACCESS,	"access",	"team-a")

enum config_section {
#define CONFIG_SECTION_ENUM(id, name, example)	CONFIG_SECT_##id,
	CONFIG_SECTIONS(CONFIG_SECTION_ENUM)
#undef CONFIG_SECTION_ENUM
	CONFIG_NSECTIONS
};

/* "server", "upstream", ... ("" for CONFIG_SECT_NONE). */
const char	*config_section_str(enum config_section);
/* The example name of a named section, NULL if it takes none. */
const char	*config_section_example(enum config_section);

/*
 * Kinds of value, and how --print-defaults describes one.  Each kind has
 * one setter in config_schema.c; CUSTOM keys bring their own (ck_set) and
 * their own description (ck_what).
 */
#define CONFIG_KINDS(X)							\
	X(STRING,	"text")						\
	X(PATH,		"path")						\
	X(FILE,		"path of a readable file")			\
	X(BOOL,		"yes or no")					\
	X(DURATION,	"duration")					\
	X(SIZE,		"size")						\
	X(INTEGER,	"integer")					\
	X(WORD,		"one of")					\
	X(ADDRESS,	"host:port, [v6]:port or :port")		\
	X(ADDRESSES,	"list of host:port, [v6]:port or :port")	\
	X(HOSTS,	"list of host or host:port")			\
	X(UPSTREAM,	"name of an [upstream] section")		\
	X(STRINGS,	"list")						\
	X(CUSTOM,	"custom")

enum config_kind {
#define CONFIG_KIND_ENUM(id, what)	CONFIG_KIND_##id,
	CONFIG_KINDS(CONFIG_KIND_ENUM)
#undef CONFIG_KIND_ENUM
	CONFIG_NKINDS
};

const char	*config_kind_str(enum config_kind);

/* The C type of the field a key sets: numbers are stored by it. */
enum config_ftype {
	CONFIG_FT_OTHER = 0,
	CONFIG_FT_INT,
	CONFIG_FT_LONG,
	CONFIG_FT_UINT,
	CONFIG_FT_ULONG,
	CONFIG_FT_ULLONG,
	CONFIG_FT_STR,
	CONFIG_FT_STRV,
};

#define CONFIG_FTYPE(x)	_Generic((x),					\
	int:			CONFIG_FT_INT,				\
	long:			CONFIG_FT_LONG,				\
	unsigned int:		CONFIG_FT_UINT,				\
	unsigned long:		CONFIG_FT_ULONG,			\
	unsigned long long:	CONFIG_FT_ULLONG,			\
	char *:			CONFIG_FT_STR,				\
	char **:		CONFIG_FT_STRV,				\
	default:		CONFIG_FT_OTHER)

#define CONFIG_KF_REPEAT	0x01	/* may be given more than once */
#define CONFIG_KF_AUTO		0x02	/* integers: "auto" is 0 */
#define CONFIG_KF_INHERIT	0x04	/* no default: -1 until given, and
					 * another key's value applies */

struct config_key;
struct config_parser;

/*
 * Apply value to key k of the section struct base (a struct config,
 * config_upstream or config_replication, by k's section); 0, or -1 with
 * the error set through config_error().
 */
typedef int	config_set_f(struct config_parser *, const struct config_key *,
		    void *base, const char *value);
/* The same for one item of a list value, which it checks and appends. */
typedef int	config_item_f(struct config_parser *, const struct config_key *,
		    void *base, char *item);

/* A row of the key table (config_schema.c). */
struct config_key {
	enum config_section	 ck_sect;
	const char		*ck_name;
	enum config_kind	 ck_kind;
	size_t			 ck_off;	/* the field in base */
	enum config_ftype	 ck_ftype;	/* ... and its type */
	size_t			 ck_noff;	/* lists: the size_t count */
	unsigned		 ck_flags;	/* CONFIG_KF_* */
	const char		*ck_dflt;	/* as in a file; NULL: none */
	const char		*ck_doc;	/* one line */
	uint64_t		 ck_min;	/* numbers, durations, sizes */
	uint64_t		 ck_max;	/* 0: no maximum */
	const char *const	*ck_words;	/* WORD: NULL-terminated */
	config_set_f		*ck_set;	/* CUSTOM: its setter, */
	config_item_f		*ck_item;	/* ... or a list's item's */
	const char		*ck_what;	/* CUSTOM: what the value is */
};

extern const struct config_key	config_keys[];
extern const size_t		config_nkeys;

/* One load: where it is in the text and what it has built so far. */
struct config_parser {
	const char		*cp_fname;
	unsigned long		 cp_line;
	char			*cp_err;
	size_t			 cp_errlen;
	struct config		*cp_cf;
	enum config_section	 cp_sect;
	struct config_upstream	*cp_up;		/* the current [upstream] */
	unsigned long		 cp_up_line;	/* ... and its header line */
	struct config_upstream	**cp_tail;
	struct config_replication *cp_repl;	/* the current [replication] */
	struct config_replication **cp_repl_tail;
	struct config_access	*cp_access;	/* the current [access] */
	struct config_access	**cp_access_tail;
	/* [config_nkeys]: the line each key was last given on in its
	 * section (for [upstream] and [replication], in this one); 0: not
	 * given. */
	unsigned long		*cp_key_line;
};

int	config_error_at(struct config_parser *, unsigned long, const char *,
	    ...) __attribute__((format(printf, 3, 4)));
#define config_error(p, ...)	config_error_at((p), (p)->cp_line, __VA_ARGS__)
void	config_warning(struct config_parser *, unsigned long, const char *,
	    ...) __attribute__((format(printf, 3, 4)));

/* The key named name (case-insensitive) of section s, or NULL. */
const struct config_key *config_key_find(enum config_section s,
	    const char *name);
/* Check and apply a value the file gives to k. */
int	config_key_set(struct config_parser *, const struct config_key *,
	    const char *value);
/* Apply k's default to base; k must have one. */
void	config_key_default(struct config_parser *, const struct config_key *,
	    void *base);
/* Defaults of every key of s whose default is not a list, into base. */
void	config_section_defaults(struct config_parser *, enum config_section,
	    void *base);
/* Free the strings and lists that the keys of s set in base. */
void	config_section_free(enum config_section, void *base);
/* Assert, once per process, that every row fits its field and kind. */
void	config_keys_check(void);

static inline int
config_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An upstream name or alias: [A-Za-z0-9.-]+ with an optional :port. */
int	config_registry_valid(const char *);
/*
 * Read fd to its end into a new buffer of max + 2 bytes (room for a NUL):
 * 0 with *buf and *len; -1 and errno on a read error; -2 when the file
 * holds more than max bytes.  *buf is set only on 0; fd stays open.
 */
int	config_read_fd(int fd, size_t max, char **buf, size_t *len);
/* Trim whitespace at both ends, in place. */
char	*config_trim(char *);
void	config_strv_add(char ***, size_t *, const char *);
void	config_strv_free(char **, size_t);

#endif

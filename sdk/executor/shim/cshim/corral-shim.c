/*
 * corral-shim: the per-task shim, in C.
 *
 * One of these runs per task, as the task's parent, for as long as the task
 * (the role conmon, tini and catatonit play for their runtimes). The
 * contract (arguments, the files under the sandbox, the status and control
 * pipes, the socket protocol) is documented in package shim
 * (sdk/executor/shim/shim.go), and the Go implementation of the same
 * contract is package shimrun, which stays the executor binary's built-in
 * shim mode. Both pass the same tests (sdk/executor/shim/shim_test.go).
 *
 * Why C: a shim is started for every task, and a Go binary, however small,
 * pays for its runtime's start (page faults, threads, heap set-up) on every
 * launch: 8-12 ms of CPU per task on a 2-core VM, more than the whole
 * per-task budget of a 1000-task launch. A static C binary starts in a few
 * dozen page faults.
 *
 * Why it looks like this:
 *  - Static, libc only, no stdio: nothing to load at start and few pages
 *    touched. Text is built in a fixed buffer (struct buf).
 *  - Error texts match the Go shim's byte for byte: errno texts as Go's
 *    syscall.Errno prints them, strings quoted as Go's strconv.Quote does,
 *    so the executor (and a user reading a task's failure) cannot tell the
 *    implementations apart.
 *  - The task's limits, cgroups and user are applied in the forked child,
 *    before its exec (the Go shim, which cannot run code between fork and
 *    exec, sets them with prlimit on the task stopped at its exec and needs
 *    an extra exec of itself as a "user stage" for a task with both a user
 *    and limits). The task's first instruction sees the same process
 *    either way; here no second exec is needed, and the exec itself is
 *    charged to the task's cgroups. With -hold the child still stops at its
 *    exec (PTRACE_TRACEME) until the executor's go byte, as the contract
 *    requires.
 *  - One thread, one poll loop over the listening socket, the task's pidfd
 *    and the accepted connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h> /* rename(2) only: no stdio streams are used */
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The contract's names (package shim / shimrun). */
#define SHIM_ARG "__corral-shim"
#define SHIM_DIR ".corral"
#define SOCK_PATH SHIM_DIR "/shim.sock"
#define EXIT_PATH SHIM_DIR "/exit_status"
#define EXIT_TMP EXIT_PATH ".tmp"
#define GO_BYTE 'g'
#define CONTROL_FD 3 /* executor -> shim */
#define STATUS_FD 4  /* shim -> executor */

/* How long a shim whose task has ended keeps serving connections accepted
 * before it ended. */
#define DRAIN_MS 5000
/* A request line longer than this is cut off (the Go shim reads 128 bytes
 * at a time and gives up past 512 without a newline: the same bound). */
#define MAX_LINE 512
#define READ_CHUNK 128

extern char **environ;

/* ---- text ---------------------------------------------------------------- */

/* buf is a bounded string builder: messages are short (a path or two), and
 * a too-long one is cut rather than allocated for. */
struct buf {
	char b[4096];
	size_t n;
};

/* buf_init empties o. Not "= {0}": zeroing 4 KiB touches (faults in)
 * stack pages that a short message never reaches. */
static void buf_init(struct buf *o)
{
	o->n = 0;
	o->b[0] = 0;
}

static void put_mem(struct buf *o, const char *s, size_t n)
{
	if (n > sizeof o->b - 1 - o->n)
		n = sizeof o->b - 1 - o->n;
	memcpy(o->b + o->n, s, n);
	o->n += n;
	o->b[o->n] = 0;
}

static void put_s(struct buf *o, const char *s) { put_mem(o, s, strlen(s)); }

static void put_c(struct buf *o, char c) { put_mem(o, &c, 1); }

static void put_u(struct buf *o, unsigned long long v)
{
	char t[24];
	size_t i = sizeof t;
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_mem(o, t + i, sizeof t - i);
}

static void put_i(struct buf *o, long long v)
{
	if (v < 0) {
		put_c(o, '-');
		put_u(o, -(unsigned long long)v);
		return;
	}
	put_u(o, (unsigned long long)v);
}

/* put_errno writes errno e as Go's syscall.Errno.Error does: glibc's text
 * with the first letter lowered when the second is lower case ("No such
 * file" -> "no such file", "RPC ..." stays), which is how Go's error table
 * was generated from it. strerrordesc_np: the untranslated text, no
 * locale machinery in a static binary. */
static void put_errno(struct buf *o, int e)
{
	const char *s = strerrordesc_np(e);
	if (!s) {
		put_s(o, "errno ");
		put_i(o, e);
		return;
	}
	if (s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'a' && s[1] <= 'z') {
		put_c(o, (char)(s[0] - 'A' + 'a'));
		s++;
	}
	put_s(o, s);
}

/* utf8_len is the length of the valid UTF-8 sequence at s (n bytes left)
 * and its code point, or 0 if the bytes there are not one. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *r)
{
	size_t len;
	uint32_t min;
	if (s[0] < 0x80) {
		*r = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		len = 2, min = 0x80, *r = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, min = 0x800, *r = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, min = 0x10000, *r = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*r = (*r << 6) | (s[i] & 0x3f);
	}
	if (*r < min || *r > 0x10ffff || (*r >= 0xd800 && *r <= 0xdfff))
		return 0;
	return len;
}

/* put_quoted writes s (n bytes) as Go's strconv.Quote does for what shim
 * messages hold: the executor unquotes it with strconv.Unquote. ASCII
 * controls get Go's escapes, bytes that are not UTF-8 become \xNN, and the
 * non-ASCII code points Go does not print (C1 controls, the soft hyphen,
 * the line and paragraph separators, the byte order mark) become \u; other
 * valid UTF-8 passes as it is. Unquote gives the original bytes back in
 * every case. */
static void put_quoted(struct buf *o, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	put_c(o, '"');
	for (size_t i = 0; i < n;) {
		uint32_t r;
		size_t l = utf8_len(s + i, n - i, &r);
		if (l == 0) {
			put_s(o, "\\x");
			put_c(o, hex[s[i] >> 4]);
			put_c(o, hex[s[i] & 15]);
			i++;
			continue;
		}
		if (r >= 0x80) {
			if (r < 0xa0 || r == 0xad || r == 0x2028 || r == 0x2029 || r == 0xfeff) {
				put_s(o, "\\u");
				for (int sh = 12; sh >= 0; sh -= 4)
					put_c(o, hex[(r >> sh) & 15]);
			} else {
				put_mem(o, (const char *)s + i, l);
			}
			i += l;
			continue;
		}
		i++;
		switch (r) {
		case '"': put_s(o, "\\\""); break;
		case '\\': put_s(o, "\\\\"); break;
		case '\a': put_s(o, "\\a"); break;
		case '\b': put_s(o, "\\b"); break;
		case '\f': put_s(o, "\\f"); break;
		case '\n': put_s(o, "\\n"); break;
		case '\r': put_s(o, "\\r"); break;
		case '\t': put_s(o, "\\t"); break;
		case '\v': put_s(o, "\\v"); break;
		default:
			if (r < 0x20 || r == 0x7f) {
				put_s(o, "\\x");
				put_c(o, hex[r >> 4]);
				put_c(o, hex[r & 15]);
			} else {
				put_c(o, (char)r);
			}
		}
	}
	put_c(o, '"');
}

/* write_all writes n bytes to fd, retrying short writes and EINTR. */
static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- numbers, as Go's strconv parses them -------------------------------- */

/* parse_uint is strconv.ParseUint(s, 10, bits): digits only, no sign, no
 * overflow. */
static int parse_uint(const char *s, size_t n, unsigned long long max, unsigned long long *v)
{
	unsigned long long x = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (x > (max - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

/* parse_int is strconv.Atoi: an optional sign, then digits. */
static int parse_int(const char *s, size_t n, long long *v)
{
	int neg = 0;
	unsigned long long u;
	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		s++, n--;
	}
	if (parse_uint(s, n, neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX, &u) < 0)
		return -1;
	*v = neg ? (long long)(0 - u) : (long long)u;
	return 0;
}

/* field returns the length of s up to sep (or its end). */
static size_t field(const char *s, char sep)
{
	const char *p = strchr(s, sep);
	return p ? (size_t)(p - s) : strlen(s);
}

/* ---- the plan: the options before "--" ----------------------------------- */

struct rlim {
	int resource;
	unsigned long long soft, hard;
};

struct plan {
	struct rlim *rlimits;
	int nrlimits;
	const char **cgroups; /* cgroup.procs files the task joins */
	int ncgroups;
	int user; /* switch to uid/gid/groups */
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
	int hold; /* stop at exec until the executor's go byte */
};

/* add_rlimit parses RESOURCE:SOFT:HARD (-1 is unlimited). */
static int add_rlimit(struct plan *p, const char *v)
{
	size_t a = field(v, ':');
	if (!v[a])
		return -1;
	const char *s = v + a + 1;
	size_t b = field(s, ':');
	if (!s[b])
		return -1;
	const char *h = s + b + 1;
	if (strchr(h, ':'))
		return -1;
	long long res;
	if (parse_int(v, a, &res) < 0 || res < 0 || res > INT_MAX)
		return -1;
	unsigned long long lim[2];
	const char *f[2] = {s, h};
	size_t fl[2] = {b, strlen(h)};
	for (int i = 0; i < 2; i++) {
		if (fl[i] == 2 && f[i][0] == '-' && f[i][1] == '1')
			lim[i] = RLIM_INFINITY;
		else if (parse_uint(f[i], fl[i], ULLONG_MAX, &lim[i]) < 0)
			return -1;
	}
	struct rlim *r = realloc(p->rlimits, sizeof *r * (size_t)(p->nrlimits + 1));
	if (!r)
		return -1;
	p->rlimits = r;
	r[p->nrlimits++] = (struct rlim){(int)res, lim[0], lim[1]};
	return 0;
}

/* parse_user parses UID:GID[:GROUP,GROUP...]. */
static int parse_user(struct plan *p, const char *v)
{
	unsigned long long u, g;
	size_t a = field(v, ':');
	if (!v[a])
		return -1;
	const char *gs = v + a + 1;
	size_t b = field(gs, ':');
	if (parse_uint(v, a, UINT32_MAX, &u) < 0 || parse_uint(gs, b, UINT32_MAX, &g) < 0)
		return -1;
	p->user = 1, p->uid = (uid_t)u, p->gid = (gid_t)g, p->ngroups = 0;
	if (!gs[b])
		return 0;
	const char *list = gs + b + 1;
	if (strchr(list, ':'))
		return -1;
	if (!*list)
		return 0;
	for (const char *s = list;;) {
		size_t l = field(s, ',');
		unsigned long long x;
		if (parse_uint(s, l, UINT32_MAX, &x) < 0)
			return -1;
		gid_t *gr = realloc(p->groups, sizeof *gr * (size_t)(p->ngroups + 1));
		if (!gr)
			return -1;
		p->groups = gr;
		gr[p->ngroups++] = (gid_t)x;
		if (!s[l])
			return 0;
		s += l + 1;
	}
}

/* parse_args splits args into the plan and the task's argv (*argv_at, an
 * index into args). Without options (the first argument does not start
 * with "-"), all of args is the argv. On error, the message goes to err. */
static int parse_args(struct plan *p, int n, char **args, int *argv_at, struct buf *err)
{
	*argv_at = 0;
	if (n == 0 || args[0][0] != '-')
		return 0;
	for (int i = 0; i < n; i++) {
		const char *a = args[i];
		if (strcmp(a, "--") == 0) {
			*argv_at = i + 1;
			return 0;
		}
		size_t nl = field(a, '=');
		const char *val = a[nl] ? a + nl + 1 : "";
		int bad = 0;
		if (nl == 7 && strncmp(a, "-rlimit", nl) == 0)
			bad = add_rlimit(p, val) < 0;
		else if (nl == 7 && strncmp(a, "-cgroup", nl) == 0) {
			const char **c = realloc(p->cgroups, sizeof *c * (size_t)(p->ncgroups + 1));
			bad = !*val || !c;
			if (c) {
				p->cgroups = c;
				c[p->ncgroups++] = val;
			}
		} else if (nl == 5 && strncmp(a, "-user", nl) == 0)
			bad = parse_user(p, val) < 0;
		else if (nl == 5 && strncmp(a, "-hold", nl) == 0)
			p->hold = 1;
		else
			bad = 1;
		if (bad) {
			put_s(err, "option ");
			put_s(err, a);
			put_s(err, ": invalid argument");
			return -1;
		}
	}
	put_s(err, "options : no \"--\" before the task's argv");
	return -1;
}

/* ---- starting the task ---------------------------------------------------- */

/* look_path resolves a command without a slash through PATH, as the Go
 * shim does (an empty PATH entry is the working directory). Returns a
 * malloc'd path, or NULL. */
static char *look_path(const char *name)
{
	if (strchr(name, '/'))
		return strdup(name);
	const char *path = getenv("PATH");
	if (!path)
		path = "";
	size_t nl = strlen(name);
	for (const char *d = path;;) {
		size_t l = field(d, ':');
		const char *dir = l ? d : ".";
		size_t dl = l ? l : 1;
		char *p = malloc(dl + 1 + nl + 1);
		if (!p)
			return NULL;
		memcpy(p, dir, dl);
		p[dl] = '/';
		memcpy(p + dl + 1, name, nl + 1);
		struct stat st;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
			return p;
		free(p);
		if (!d[l])
			return NULL;
		d += l + 1;
	}
}

/* The shim's own SIGPIPE disposition is SIG_IGN (a write to a closed pipe
 * or socket must be an error, not the shim's death: a dead shim would let
 * a held task run unsupervised); the task gets the one the shim started
 * with, as an exec from Go gives it. */
static struct sigaction orig_sigpipe;

/* child_fail reports why the task could not start on fd and exits. */
static _Noreturn void child_fail(int fd, struct buf *m)
{
	(void)write_all(fd, m->b, m->n);
	_exit(127);
}

/* child is the task between fork and exec: its own session, limits,
 * cgroups and user, in that order (limits and cgroups while still root: a
 * root-only cgroup.procs is writable, and raising a hard limit needs the
 * privilege the user may not have), then, with -hold, a stop at its exec
 * for the shim to hold it. On failure the message goes to errfd
 * (close-on-exec: EOF there means the exec happened). */
static _Noreturn void child(const struct plan *p, const char *path, char **argv, int errfd)
{
	struct buf m;
	buf_init(&m);
	sigaction(SIGPIPE, &orig_sigpipe, NULL);
	setsid();
	for (int i = 0; i < p->nrlimits; i++) {
		const struct rlim *r = &p->rlimits[i];
		struct rlimit l = {.rlim_cur = r->soft, .rlim_max = r->hard};
		if (setrlimit((__rlimit_resource_t)r->resource, &l) < 0) {
			int e = errno;
			put_s(&m, "setrlimit ");
			put_i(&m, r->resource);
			put_s(&m, " to ");
			put_u(&m, r->soft);
			put_c(&m, ':');
			put_u(&m, r->hard);
			put_s(&m, ": ");
			put_errno(&m, e);
			child_fail(errfd, &m);
		}
	}
	if (p->ncgroups > 0) {
		struct buf pid;
		buf_init(&pid);
		put_i(&pid, getpid());
		for (int i = 0; i < p->ncgroups; i++) {
			const char *op = "open";
			int fd = open(p->cgroups[i], O_WRONLY | O_CLOEXEC);
			if (fd >= 0) {
				/* One write: the kernel takes a pid per write(2). */
				op = "write";
				if (write_all(fd, pid.b, pid.n) == 0) {
					op = "close";
					if (close(fd) == 0)
						continue;
				} else {
					int e = errno;
					close(fd);
					errno = e;
				}
			}
			int e = errno;
			put_s(&m, "join cgroup: ");
			put_s(&m, op);
			put_c(&m, ' ');
			put_s(&m, p->cgroups[i]);
			put_s(&m, ": ");
			put_errno(&m, e);
			child_fail(errfd, &m);
		}
	}
	if (p->user) {
		/* Raw system calls: this process has one thread, and nothing of
		 * libc's set*id bookkeeping is needed before the exec. */
		const char *what = "setgroups";
		long id = -1;
		if (syscall(SYS_setgroups, (size_t)p->ngroups, p->groups) < 0 ||
		    (what = "setgid", id = p->gid, syscall(SYS_setgid, p->gid) < 0) ||
		    (what = "setuid", id = p->uid, syscall(SYS_setuid, p->uid) < 0)) {
			int e = errno;
			/* The Go shim's words: its user stage's (with limits) or
			 * its fork's (without). */
			if (p->nrlimits > 0) {
				put_s(&m, what);
				if (id >= 0) {
					put_c(&m, ' ');
					put_i(&m, id);
				}
			} else {
				put_s(&m, "exec ");
				put_s(&m, path);
			}
			put_s(&m, ": ");
			put_errno(&m, e);
			child_fail(errfd, &m);
		}
	}
	if (!p->hold || ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0)
		execve(path, argv, environ);
	int e = errno;
	put_s(&m, "exec ");
	put_s(&m, path);
	put_s(&m, ": ");
	put_errno(&m, e);
	child_fail(errfd, &m);
}

/* reap waits for pid and returns its wait status ("exit 255" if there is
 * none to be had: never seen, kept distinct). */
static int reap(pid_t pid)
{
	int ws;
	for (;;) {
		if (waitpid(pid, &ws, 0) == pid)
			return ws;
		if (errno != EINTR)
			return 0xff00;
	}
}

/* wait_exec_stop waits for the traced pid to stop at its exec (SIGTRAP),
 * passing on any other signal it stops for. 0 if it ended instead. */
static int wait_exec_stop(pid_t pid, int *ws)
{
	for (;;) {
		if (waitpid(pid, ws, 0) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (!WIFSTOPPED(*ws))
			return 0;
		if (WSTOPSIG(*ws) == SIGTRAP)
			return 1;
		if (ptrace(PTRACE_CONT, pid, NULL, (void *)(long)WSTOPSIG(*ws)) < 0)
			return 0;
	}
}

/* spawn forks the task's process (running child) and returns its pid.
 * vfork: the child borrows this memory until its exec, so no page tables
 * are copied and no page is copied on write, in the shim or the child
 * (child() makes system calls and writes only its own frame; its signal
 * dispositions, limits and credentials are its own). Its own function, so
 * that no local of the caller lives across the vfork. */
static __attribute__((noinline)) pid_t spawn(const struct plan *p, const char *path, char **argv, const int ep[2])
{
	pid_t pid = vfork();
	if (pid == 0) {
		close(ep[0]);
		child(p, path, argv, ep[1]);
	}
	return pid;
}

/* start starts the task: its pid, or 0 with msg saying why its command
 * could not be started. With -hold the task is left stopped at its exec,
 * traced by this process. */
static pid_t start(const struct plan *p, char **argv, struct buf *msg)
{
	char *path = look_path(argv[0]);
	if (!path) {
		put_s(msg, "exec: ");
		put_quoted(msg, argv[0], strlen(argv[0]));
		put_s(msg, ": executable file not found in $PATH");
		return 0;
	}
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0) {
		put_s(msg, "exec ");
		put_s(msg, path);
		put_s(msg, ": ");
		put_errno(msg, errno);
		return 0;
	}
	pid_t pid = spawn(p, path, argv, ep);
	int e = errno;
	close(ep[1]);
	if (pid < 0) {
		close(ep[0]);
		put_s(msg, "exec ");
		put_s(msg, path);
		put_s(msg, ": ");
		put_errno(msg, e);
		return 0;
	}
	int ws = 0, stopped = 1;
	if (p->hold)
		/* Waited for before the pipe is read: a child stopped by a
		 * signal on its way to the exec is sent on, not waited on
		 * forever. At the exec stop the pipe is already closed. */
		stopped = wait_exec_stop(pid, &ws);
	char t[sizeof msg->b];
	size_t n = 0;
	for (;;) {
		ssize_t r = read(ep[0], t + n, sizeof t - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof t - 1)
			break;
	}
	close(ep[0]);
	if (n > 0 || !stopped) {
		if (n > 0) {
			put_mem(msg, t, n);
		} else {
			put_s(msg, "exec ");
			put_s(msg, path);
			put_s(msg, ": the task did not stop at its exec");
		}
		if (stopped && p->hold) {
			/* Cannot be (a failed exec does not stop), but never
			 * leave a traced child behind. */
			kill(pid, SIGKILL);
			ptrace(PTRACE_DETACH, pid, NULL, NULL);
		}
		if (!p->hold || stopped)
			reap(pid);
		free(path);
		return 0;
	}
	free(path);
	return pid;
}

/* ---- recording the end ----------------------------------------------------- */

struct status {
	int code, signal;
};

static struct status status_of(int ws)
{
	if (WIFSIGNALED(ws))
		return (struct status){128 + WTERMSIG(ws), WTERMSIG(ws)};
	if (WIFEXITED(ws))
		return (struct status){WEXITSTATUS(ws), 0};
	return (struct status){-1, 0};
}

/* write_exit records st durably (write, fsync, rename, fsync the
 * directory): the executor or a restarted agent reads it after the shim is
 * gone. On error the message goes to err. */
static int write_exit(struct status st, struct buf *err)
{
	struct buf line;
	buf_init(&line);
	put_i(&line, st.code);
	put_c(&line, ' ');
	put_i(&line, st.signal);
	put_c(&line, '\n');
	const char *op = "open";
	int fd = open(EXIT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		int ok = (op = "write", write_all(fd, line.b, line.n) == 0) && (op = "fsync", fsync(fd) == 0);
		int e = errno;
		if (!ok) {
			close(fd);
			errno = e;
		} else if ((op = "close", close(fd) == 0) && (op = "rename", rename(EXIT_TMP, EXIT_PATH) == 0)) {
			int d = open(SHIM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (d >= 0) {
				fsync(d);
				close(d);
			}
			return 0;
		}
	}
	int e = errno;
	put_s(err, op);
	put_s(err, " " EXIT_TMP ": ");
	put_errno(err, e);
	return -1;
}

/* ---- the server -------------------------------------------------------------- */

struct conn {
	int fd;
	int waiting; /* asked "wait" before the task ended */
	size_t n;
	char buf[MAX_LINE + READ_CHUNK];
};

static struct {
	pid_t pid;
	int ln;     /* listening socket; -1 once closed */
	int exit_fd; /* readable once the task ended: pidfd or signalfd; -1 once reaped */
	int sigfd;  /* exit_fd is a signalfd for SIGCHLD (no pidfd) */
	struct conn **conns;
	int nconns, cap;
	int done;
	struct status st;
} S;

static void drop(struct conn *c)
{
	close(c->fd);
	for (int i = 0; i < S.nconns; i++) {
		if (S.conns[i] == c) {
			memmove(&S.conns[i], &S.conns[i + 1], sizeof *S.conns * (size_t)(S.nconns - i - 1));
			S.nconns--;
			break;
		}
	}
	free(c);
}

/* reply sends the answer and closes the connection. Answers are a few
 * bytes, far below a socket's buffer, so a non-blocking send takes them. */
static void reply(struct conn *c, struct buf *line)
{
	put_c(line, '\n');
	(void)send(c->fd, line->b, line->n, MSG_NOSIGNAL);
	drop(c);
}

static void exit_line(struct buf *o)
{
	put_s(o, "exit ");
	put_i(o, S.st.code);
	put_c(o, ' ');
	put_i(o, S.st.signal);
}

/* exited records the task's end, answers the waiters and stops accepting. */
static void exited(int ws)
{
	S.st = status_of(ws);
	S.done = 1;
	struct buf err;
	buf_init(&err);
	if (write_exit(S.st, &err) < 0) {
		/* The socket still answers waiters; the file is the fallback. */
		struct buf m;
		buf_init(&m);
		put_s(&m, "corral shim: record exit status: ");
		put_mem(&m, err.b, err.n);
		put_c(&m, '\n');
		(void)write_all(2, m.b, m.n);
	}
	if (S.ln >= 0) {
		close(S.ln);
		S.ln = -1;
		unlink(SOCK_PATH);
	}
	/* Backwards: reply drops the connection from the array. */
	for (int i = S.nconns - 1; i >= 0; i--) {
		if (i < S.nconns && S.conns[i]->waiting) {
			struct buf l;
			buf_init(&l);
			exit_line(&l);
			reply(S.conns[i], &l);
		}
	}
}

/* task_ended reaps the task once exit_fd polls readable; 0 if (with a
 * signalfd) the SIGCHLD was not the task's end. */
static int task_ended(void)
{
	int ws;
	if (S.sigfd) {
		struct signalfd_siginfo si;
		while (read(S.exit_fd, &si, sizeof si) > 0) {
		}
		pid_t r = waitpid(S.pid, &ws, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR))
			return 0;
		if (r < 0)
			ws = 0xff00;
	} else {
		ws = reap(S.pid);
	}
	close(S.exit_fd);
	S.exit_fd = -1;
	exited(ws);
	return 1;
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(S.ln, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN: no more pending; anything else: the client's loss */
		if (S.nconns == S.cap) {
			int cap = S.cap ? 2 * S.cap : 8;
			struct conn **cs = realloc(S.conns, sizeof *cs * (size_t)cap);
			if (!cs) {
				close(fd); /* out of memory: the client's loss */
				continue;
			}
			S.conns = cs, S.cap = cap;
		}
		struct conn *c = malloc(sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd, c->waiting = 0, c->n = 0;
		S.conns[S.nconns++] = c;
	}
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static void handle(struct conn *c, char *line, size_t n)
{
	while (n > 0 && is_space(line[0]))
		line++, n--;
	while (n > 0 && is_space(line[n - 1]))
		n--;
	const char *arg = "";
	size_t cn = n, an = 0;
	char *sp = memchr(line, ' ', n);
	if (sp) {
		cn = (size_t)(sp - line);
		arg = sp + 1;
		an = n - cn - 1;
	}
	struct buf r;
	buf_init(&r);
	if (cn == 4 && memcmp(line, "wait", 4) == 0) {
		if (!S.done) {
			c->waiting = 1;
			c->n = 0;
			return;
		}
		exit_line(&r);
	} else if (cn == 6 && memcmp(line, "signal", 6) == 0) {
		long long sig;
		if (parse_int(arg, an, &sig) < 0 || sig <= 0) {
			put_s(&r, "err bad signal ");
			put_quoted(&r, arg, an);
		} else if (S.done) {
			put_s(&r, "ok"); /* nothing left to signal; never a reused pid */
		} else if (kill(-S.pid, (int)sig) < 0 && errno != ESRCH) {
			put_s(&r, "err ");
			put_errno(&r, errno);
		} else {
			put_s(&r, "ok");
		}
	} else if (cn == 3 && memcmp(line, "pid", 3) == 0) {
		put_s(&r, "pid ");
		put_i(&r, S.pid);
	} else {
		put_s(&r, "err unknown request ");
		put_quoted(&r, line, cn);
	}
	reply(c, &r);
}

/* read_conn takes what a client sent; a complete line is answered. */
static void read_conn(int fd)
{
	struct conn *c = NULL;
	for (int i = 0; i < S.nconns; i++)
		if (S.conns[i]->fd == fd)
			c = S.conns[i];
	if (!c)
		return;
	char b[READ_CHUNK];
	ssize_t n = read(fd, b, sizeof b);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		drop(c); /* the client went away, or sent no full line */
		return;
	}
	if (c->waiting)
		return; /* one request per connection; the rest is ignored */
	memcpy(c->buf + c->n, b, (size_t)n);
	c->n += (size_t)n;
	char *nl = memchr(c->buf, '\n', c->n);
	if (!nl) {
		if (c->n > MAX_LINE)
			drop(c);
		return;
	}
	handle(c, c->buf, (size_t)(nl - c->buf));
}

static long long monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* loop serves the socket until the task has ended, then records its exit
 * status, answers waiters and serves the connections already accepted for
 * at most DRAIN_MS. */
static void loop(void)
{
	if (S.exit_fd < 0 && !S.done) {
		/* Nothing to poll: serve nothing, wait, record. */
		exited(reap(S.pid));
	}
	long long deadline = 0;
	struct pollfd *fds = NULL;
	int fcap = 0;
	for (;;) {
		if (S.done) {
			if (S.nconns == 0)
				return;
			if (deadline == 0)
				deadline = monotonic_ms() + DRAIN_MS;
		}
		if (fcap < S.nconns + 2) {
			fcap = S.nconns + 8;
			struct pollfd *f = realloc(fds, sizeof *fds * (size_t)fcap);
			if (!f) {
				/* Out of memory: at least record the end. */
				if (!S.done && S.exit_fd >= 0)
					exited(reap(S.pid));
				return;
			}
			fds = f;
		}
		int nf = 0, ln_i = -1, exit_i = -1;
		if (S.ln >= 0) {
			ln_i = nf;
			fds[nf++] = (struct pollfd){.fd = S.ln, .events = POLLIN};
		}
		if (S.exit_fd >= 0) {
			exit_i = nf;
			fds[nf++] = (struct pollfd){.fd = S.exit_fd, .events = POLLIN};
		}
		for (int i = 0; i < S.nconns; i++)
			fds[nf++] = (struct pollfd){.fd = S.conns[i]->fd, .events = POLLIN};
		int timeout = -1;
		if (deadline != 0) {
			long long left = deadline - monotonic_ms();
			if (left <= 0)
				return;
			timeout = (int)left;
		}
		int n = poll(fds, (nfds_t)nf, timeout);
		if (n == 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0) {
			/* poll(2) fails only on bad arguments; fall back to waiting. */
			if (!S.done && S.exit_fd >= 0)
				exited(reap(S.pid));
			return;
		}
		for (int i = 0; i < nf; i++) {
			if (fds[i].revents == 0)
				continue;
			if (i == ln_i)
				accept_all();
			else if (i == exit_i)
				task_ended();
			else
				read_conn(fds[i].fd);
		}
	}
}

/* watch_exit makes S.exit_fd: the task's pidfd (Linux 5.3), else a
 * signalfd for SIGCHLD, blocked from here on (the task was forked with the
 * shim's mask, so it is not affected). -1 if neither can be had. */
static void watch_exit(void)
{
	int fd = (int)syscall(SYS_pidfd_open, S.pid, 0); /* close-on-exec by definition */
	if (fd >= 0) {
		S.exit_fd = fd;
		return;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return;
	S.exit_fd = fd, S.sigfd = 1;
	/* A task that ended before SIGCHLD was blocked sent its signal
	 * already: look once now. */
	task_ended();
}

/* ---- main ------------------------------------------------------------------ */

/* fail reports that the shim itself could not work, on the status pipe. */
static int fail(const char *what, const char *err)
{
	struct buf m, t;
	buf_init(&m);
	buf_init(&t);
	put_s(&t, what);
	put_s(&t, ": ");
	put_s(&t, err);
	put_s(&m, "error ");
	put_quoted(&m, t.b, t.n);
	put_c(&m, '\n');
	(void)write_all(STATUS_FD, m.b, m.n);
	return 127;
}

static int fail_errno(const char *what, int e)
{
	struct buf t;
	buf_init(&t);
	put_errno(&t, e);
	return fail(what, t.b);
}

/* run is the shim of the task: args are its options, "--" and the task's
 * argv (or the argv alone). It returns the shim's exit code once the task
 * has ended and its status is recorded (127 if the task could not be
 * started). */
static int run(int n, char **args)
{
	/* Nothing but stdin, stdout and stderr may leak into the task: not
	 * the executor's pipes, nor what it inherited without close-on-exec
	 * (close_range, Linux 5.11; before, the two pipes, which are all the
	 * executor passes on). */
	if (syscall(SYS_close_range, CONTROL_FD, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		fcntl(CONTROL_FD, F_SETFD, FD_CLOEXEC);
		fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);
	}
	/* fds 3 and 4 must be the pipes (or at least taken): started without
	 * them, the shim's own socket or pidfd would get those numbers and be
	 * closed as "the pipes" once the task runs. /dev/null stands in: no
	 * one hears the status, and a held task, never told to go, is killed. */
	for (int fd = CONTROL_FD; fd <= STATUS_FD; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul >= 0 && nul != fd) {
			dup3(nul, fd, O_CLOEXEC);
			close(nul);
		}
	}
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &ign, &orig_sigpipe);

	struct plan p = {0};
	struct buf err;
	buf_init(&err);
	int at;
	if (parse_args(&p, n, args, &at, &err) < 0)
		return fail("shim", err.b);
	char **argv = args + at;
	if (at >= n)
		return fail_errno("shim", EINVAL);
	if (mkdir(SHIM_DIR, 0700) < 0 && errno != EEXIST)
		return fail_errno("shim dir", errno);
	unlink(SOCK_PATH);
	unlink(EXIT_PATH);

	/* argv is NULL-terminated: it is the tail of main's argv. */
	struct buf msg;
	buf_init(&msg);
	pid_t pid = start(&p, argv, &msg);
	if (pid <= 0) {
		/* The command never ran: that is the task's end (exit code 127,
		 * as shells report it), not the shim's failure. */
		struct buf werr;
		buf_init(&werr);
		if (write_exit((struct status){127, 0}, &werr) < 0)
			return fail("shim", werr.b);
		struct buf m;
		buf_init(&m);
		put_s(&m, "nostart ");
		put_quoted(&m, msg.b, msg.n);
		put_c(&m, '\n');
		(void)write_all(STATUS_FD, m.b, m.n);
		return 127;
	}
	/* A relative path: sun_path holds 108 bytes, a sandbox path may not. */
	int ln = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = SOCK_PATH};
	if (ln < 0 || bind(ln, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ln, 64) < 0) {
		int e = errno;
		if (ln >= 0)
			close(ln);
		kill(pid, SIGKILL);
		if (p.hold)
			ptrace(PTRACE_DETACH, pid, NULL, NULL);
		reap(pid);
		return fail_errno("shim socket", e);
	}
	struct buf m;
	buf_init(&m);
	put_s(&m, "pid ");
	put_i(&m, pid);
	put_c(&m, '\n');
	(void)write_all(STATUS_FD, m.b, m.n);
	if (p.hold) {
		/* The executor isolates the task now; its command runs once the
		 * executor says go. Anything else (EOF: the executor aborted or
		 * died) ends the task before it ran. */
		char b = 0;
		ssize_t r;
		while ((r = read(CONTROL_FD, &b, 1)) < 0 && errno == EINTR) {
		}
		if (r != 1 || b != GO_BYTE)
			kill(pid, SIGKILL);
		/* Let the command run (a killed one dies now). */
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
	}
	close(CONTROL_FD);
	close(STATUS_FD);
	/* The task holds stdout and stderr; the shim keeps its copies open (a
	 * reader of the files sees them as the task's), but writes nothing. */

	S.pid = pid;
	S.ln = ln;
	S.exit_fd = -1;
	watch_exit();
	loop();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], SHIM_ARG) == 0)
		return run(argc - 2, argv + 2);
	static const char msg[] = "corral-shim is started by an executor (first argument " SHIM_ARG "), not by hand\n";
	(void)write_all(2, msg, sizeof msg - 1);
	return 2;
}

/* main.c: the lat command. The one piece of C that knows Lua: it embeds LuaJIT, puts the lat
 * library on its paths, and runs a script, a snippet or the REPL (lua/lat/tools/repl.lua), giving
 * the REPL line editing and history from libedit and Ctrl-C that interrupts a running command. */
#define _GNU_SOURCE /* dladdr */
#include "lat.h"
#include <dlfcn.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>
#include <readline.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *usage =
    "usage: lat [options] [script.lua [--key=value ...]]\n"
    "       lat merge RUN [RUN ...]\n"
    "       lat sweep --slurm [--submit] [sweep options] RECIPE [recipe options]\n"
    "\n"
    "Runs a Lua script with the lat library loaded, or with no script an interactive REPL.\n"
    "The script sees its arguments in the global table `arg` (arg[0] is the script) and as\n"
    "parsed options through lat.args(). `lat merge` merges a sweep's rows into results.csv;\n"
    "`lat sweep` writes a Slurm job array for a recipe's grid (lat sweep --help).\n"
    "\n"
    "options:\n"
    "  -e CODE      run CODE (after it, a script if one is given)\n"
    "  -i           open the REPL after running the script or -e code\n"
    "  -v, --version  print the version, the Lua library and liblat in use, the CPU, and exit\n"
    "  -h, --help   print this help and exit\n"
    "\n"
    "environment (every variable lat reads):\n"
    "  LAT_NUM_THREADS   threads for OpenBLAS and lat's own loops (default: all cores)\n"
    "  LAT_DATA          the data sets' folder (default: data/ under the working directory)\n"
    "  LAT_LUA_DIR       the Lua library to use (default: beside this lat; lat --version says which)\n"
    "  LAT_LIBRARY       liblat.so to load (default: the one this lat is linked with)\n"
    "  LAT_MPI_LIBRARY   liblat_mpi.so for lat.dist (default: beside liblat)\n"
    "  LAT_TRACEBACK     'full' shows lat's internal frames in error tracebacks (default: hidden)\n"
    "  LAT_CHECK_FINITE  0 turns off the stop at the first NaN or Inf (default: 1)\n"
    "  LAT_PROGRESS      progress bars: tty, plain, display or off (default: by where output goes)\n"
    "  LAT_HISTORY       REPL history file (default: ~/.lat_history; HOME locates it)\n"
    "  LAT_GNUPLOT       the gnuplot command lat.plot runs (default: gnuplot)\n"
    "  LAT_CONV_PATH     im2col or direct: force one convolution path (tests, benchmarks)\n"
    "  LAT_CPU           avx512, avx2 or generic: use no kernels above that level (default: what the CPU has)\n"
    "  OMP_WAIT_POLICY, GOMP_SPINCOUNT\n"
    "                    kept as given; unless one is set, lat runs itself with OMP_WAIT_POLICY=PASSIVE\n"
    "  LAT_KERNEL_FD     set by the Jupyter kernel (notebooks/kernel): its reply pipe\n"
    "  SLURM_ARRAY_TASK_ID, _COUNT, _MIN, _STEP, SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_ID,\n"
    "  SLURM_ARRAY_JOB_ID, OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, PMI_RANK, PMI_SIZE\n"
    "                    a sweep's shard and lat.dist's ranks, from the engine that started lat\n";

static lua_State *globalL;

static void stop_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, "interrupted");
}

static void on_sigint(int sig) {
  signal(sig, SIG_DFL); /* a second Ctrl-C ends the process */
  lua_sethook(globalL, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static char lua_dir[4096];         /* the Lua library in use */
static const char *lua_dir_kind = ""; /* where it was found, for --version */

/* Whether a traceback line names a file of the Lua library: "\t<lua_dir>/lat/...", or, where
 * Lua shortened a long name to its end, "\t...<end of lua_dir>/lat/..." */
static int in_lua_library(const char *line) {
  size_t dir = strlen(lua_dir);
  if (!strncmp(line, "\t", 1) && !strncmp(line + 1, lua_dir, dir) && !strncmp(line + 1 + dir, "/lat/", 5)) return 1;
  if (strncmp(line, "\t...", 4)) return 0;
  const char *path = line + 4, *colon = strchr(path, ':');
  for (const char *p = strstr(path, "/lat/"); p && (!colon || p < colon); p = strstr(p + 1, "/lat/")) {
    size_t k = (size_t)(p - path);
    if (k <= dir && !strncmp(lua_dir + dir - k, path, k)) return 1;
  }
  return 0;
}

/* Keeps the traceback's frames in the user's code: those in lat's own Lua files and in C
 * functions (error, pcall, require) are dropped, with a line saying how many, unless
 * LAT_TRACEBACK=full. */
static void push_user_traceback(lua_State *L, const char *full) {
  const char *e = getenv("LAT_TRACEBACK");
  const char *frames = strstr(full, "\nstack traceback:\n");
  if ((e && !strcmp(e, "full")) || !frames) {
    lua_pushstring(L, full);
    return;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  frames += strlen("\nstack traceback:\n");
  luaL_addlstring(&b, full, (size_t)(frames - full));
  int hidden = 0;
  for (const char *line = frames; *line;) {
    const char *end = strchr(line, '\n');
    size_t n = end ? (size_t)(end - line) : strlen(line);
    int internal = in_lua_library(line) || !strncmp(line, "\t[C]:", 5);
    if (internal) {
      hidden++;
    } else {
      luaL_addlstring(&b, line, n);
      luaL_addchar(&b, '\n');
    }
    line += n + (end != NULL);
  }
  if (hidden) {
    char note[128];
    snprintf(note, sizeof note, "\t(%d frames inside lat and C hidden; LAT_TRACEBACK=full shows them)", hidden);
    luaL_addstring(&b, note);
  }
  luaL_pushresult(&b);
}

static int traceback(lua_State *L) {
  if (!lua_isstring(L, 1)) {
    if (lua_isnoneornil(L, 1) || !luaL_callmeta(L, 1, "__tostring") || !lua_isstring(L, -1))
      return 1;
    lua_remove(L, 1);
  }
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
  push_user_traceback(L, lua_tostring(L, -1));
  return 1;
}

/* cli.run(f, ...): call f with a traceback handler and Ctrl-C armed; returns ok, results...
 * Afterwards SIGINT goes back to what it was (the notebook kernel ignores it between cells). */
static int cli_run(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushcfunction(L, traceback);
  lua_insert(L, 1);
  void (*before)(int) = signal(SIGINT, on_sigint);
  int rc = lua_pcall(L, n - 1, LUA_MULTRET, 1);
  signal(SIGINT, before == on_sigint ? SIG_DFL : before);
  lua_sethook(L, NULL, 0, 0);
  lua_pushboolean(L, rc == 0);
  lua_replace(L, 1);
  return lua_gettop(L);
}

static int interactive(void) { return isatty(0) && isatty(1); }

/* cli.readline(prompt): a line without its newline, or nil at end of input */
static int cli_readline(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "> ");
  if (interactive()) {
    char *line = readline(prompt);
    if (!line) return 0;
    lua_pushstring(L, line);
    free(line);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int c, any = 0;
  while ((c = getchar()) != EOF && c != '\n') {
    luaL_addchar(&b, (char)c);
    any = 1;
  }
  if (c == EOF && !any) return 0;
  luaL_pushresult(&b);
  return 1;
}

static const char *history_path(void) {
  static char path[4096];
  const char *h = getenv("LAT_HISTORY");
  if (h) return h;
  const char *home = getenv("HOME");
  if (!home) return NULL;
  snprintf(path, sizeof path, "%s/.lat_history", home);
  return path;
}

static int cli_add_history(lua_State *L) {
  const char *line = luaL_checkstring(L, 1);
  if (!interactive()) return 0;
  add_history(line);
  const char *p = history_path();
  if (p) write_history(p); /* libedit's own format: spaces stored as \040 */
  return 0;
}

/* Tab completion: the word before the cursor goes to the Lua function the REPL registered as
 * lat.cli.complete, which returns the candidate words; libedit shows or inserts them. */
static char **candidates;
static int n_candidates;

static char *next_candidate(const char *text, int state) {
  (void)text;
  return state < n_candidates ? strdup(candidates[state]) : NULL;
}

static char **complete(const char *text, int start, int end) {
  (void)start;
  (void)end;
  lua_State *L = globalL;
  for (int i = 0; i < n_candidates; i++) free(candidates[i]);
  free(candidates);
  candidates = NULL;
  n_candidates = 0;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  lua_getfield(L, LUA_REGISTRYINDEX, "lat.cli");
  lua_getfield(L, -1, "complete");
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    return NULL;
  }
  lua_pushstring(L, text);
  if (lua_pcall(L, 1, 1, 0) != 0 || !lua_istable(L, -1)) {
    lua_pop(L, 2);
    return NULL;
  }
  int n = (int)lua_objlen(L, -1);
  candidates = calloc((size_t)n + 1, sizeof *candidates);
  for (int i = 1; candidates && i <= n; i++) {
    lua_rawgeti(L, -1, i);
    const char *c = lua_tostring(L, -1);
    if (c) candidates[n_candidates++] = strdup(c);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  rl_completion_append_character = '\0';
  return n_candidates ? rl_completion_matches(text, next_candidate) : NULL;
}

static int cli_interactive(lua_State *L) {
  lua_pushboolean(L, interactive());
  return 1;
}

static void register_cli(lua_State *L) {
  static const luaL_Reg fns[] = {{"run", cli_run},
                                 {"readline", cli_readline},
                                 {"add_history", cli_add_history},
                                 {"interactive", cli_interactive},
                                 {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  lua_setfield(L, LUA_REGISTRYINDEX, "lat.cli");
  /* package.preload['lat.cli'] returns it */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "loaded");
  lua_getfield(L, LUA_REGISTRYINDEX, "lat.cli");
  lua_setfield(L, -2, "lat.cli");
  lua_pop(L, 2);
}

/* lat.cli.failed = true: the script raised an error or asked for a failing exit status, for the
 * finalisers that lua_close runs and that must know (lat.dist ends MPI by aborting the job then) */
static void mark_failed(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "lat.cli");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "failed");
  lua_pop(L, 1);
}

/* os.exit(code[, close]): LuaJIT's, but closing the Lua state unless close is false, so that the
 * finalisers free what the Lua heap held and LeakSanitizer (.ci/sanitize.sh) sees a clean exit
 * rather than every live tensor as a leak. */
static int exit_closing(lua_State *L) {
  int close = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  int ok = lua_isnoneornil(L, 1) || (lua_isboolean(L, 1) ? lua_toboolean(L, 1) : lua_tointeger(L, 1) == 0);
  if (!ok) mark_failed(L);
  lua_settop(L, 1);
  lua_pushboolean(L, close);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 0);
  return 0;
}

static void close_on_exit(lua_State *L) {
  lua_getglobal(L, "os");
  lua_getfield(L, -1, "exit");
  lua_pushcclosure(L, exit_closing, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
}

static int is_lua_library(const char *dir) {
  char path[4096 + 32];
  struct stat st;
  snprintf(path, sizeof path, "%s/lat/init.lua", dir);
  return stat(path, &st) == 0;
}

/* The Lua library: $LAT_LUA_DIR, else the one installed beside this lat (bin/../share/lat/lua),
 * else that of the source tree this lat was built in (build/../lua), found from the binary's
 * own path, so that an installed or moved lat and each clone's build use their own files.
 * Returns 0 when none is found. */
static int find_lua_dir(void) {
  const char *env = getenv("LAT_LUA_DIR");
  if (env) {
    snprintf(lua_dir, sizeof lua_dir, "%s", env);
    lua_dir_kind = "LAT_LUA_DIR";
    return is_lua_library(lua_dir);
  }
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  static const struct { const char *rel, *kind; } places[] = {
      {"/../share/lat/lua", "installed"}, {"/../lua", "build tree"}};
  for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
    char dir[4096 + 32];
    snprintf(dir, sizeof dir, "%s%s", exe, places[i].rel);
    if (is_lua_library(dir) && realpath(dir, lua_dir)) {
      lua_dir_kind = places[i].kind;
      return 1;
    }
  }
  return 0;
}

/* the liblat this lat is linked with (the dynamic linker found it through the rpath) */
static const char *linked_library(void) {
  Dl_info info;
  return dladdr((void *)lat_version, &info) && info.dli_fname ? info.dli_fname : "liblat.so";
}

static void set_paths(lua_State *L) {
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", lua_dir, lua_dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (!getenv("LAT_LIBRARY")) setenv("LAT_LIBRARY", linked_library(), 1);
}

static void print_version(void) {
  int found = find_lua_dir();
  printf("lat %s (%s, liblat %s)\n", LAT_VERSION, LUAJIT_VERSION, lat_version());
  printf("Lua library: %s (%s%s)\n", lua_dir, lua_dir_kind, found ? "" : ", not found");
  printf("liblat: %s\n", getenv("LAT_LIBRARY") ? getenv("LAT_LIBRARY") : linked_library());
  __builtin_cpu_init();
  printf("CPU: %ld cores online, %s; kernels: %s%s; %d threads%s\n", sysconf(_SC_NPROCESSORS_ONLN),
         __builtin_cpu_supports("avx512f") ? "AVX-512" : __builtin_cpu_supports("avx2") ? "AVX2" : "no AVX2",
         lat_cpu_level(), getenv("LAT_CPU") ? " (LAT_CPU)" : "", lat_get_num_threads(),
         getenv("LAT_NUM_THREADS") ? " (LAT_NUM_THREADS)" : "");
}

static int report(lua_State *L, int rc) {
  if (rc) mark_failed(L);
  if (rc && !lua_isnil(L, -1)) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lat: %s\n", msg ? msg : "(error object is not a string)");
    lua_pop(L, 1);
  }
  return rc;
}

static int docall(lua_State *L, int nargs) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback);
  lua_insert(L, base);
  signal(SIGINT, on_sigint);
  int rc = lua_pcall(L, nargs, 0, base);
  signal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return rc;
}

static int dostring(lua_State *L, const char *code, const char *name) {
  return report(L, luaL_loadbuffer(L, code, strlen(code), name) || docall(L, 0));
}

/* global arg: arg[0] = script, arg[1..] = its arguments, arg[-k] = the interpreter side */
static void set_arg(lua_State *L, char **argv, int argc, int script) {
  lua_createtable(L, argc - script, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* the words that name a subcommand rather than a script */
static int is_subcommand(const char *word) { return !strcmp(word, "merge") || !strcmp(word, "sweep"); }

static int run_repl(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lat.tools.repl");
  if (report(L, docall(L, 1))) return 1;
  return 0;
}

/* libgomp reads OMP_WAIT_POLICY as it loads, before main, and by default idle workers spin:
   on a shared machine 2 threads ran 10-15 times slower. Unless the user chose a policy, lat
   runs itself again once with PASSIVE (if exec fails it carries on with the default). */
static void wait_passively(char **argv) {
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
  const char *missing = lat_cpu_missing();
  if (missing) {
    fprintf(stderr, "lat: this build of lat uses %s, which this CPU lacks: build it again with "
                    "cmake -DLAT_ARCH=x86-64 (any x86-64) or -DLAT_ARCH=native\n", missing);
    return 1;
  }
  wait_passively(argv);
  const char *code = NULL;
  int script = 0, want_repl = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
      print_version();
      return 0;
    } else if (!strcmp(a, "-e")) {
      if (++i == argc) {
        fputs("lat: -e needs an argument\n", stderr);
        return 2;
      }
      code = argv[i];
    } else if (!strcmp(a, "-i")) {
      want_repl = 1;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "lat: unknown option '%s' (try lat --help)\n", a);
      return 2;
    } else {
      script = i;
      break;
    }
  }
  if (!find_lua_dir()) {
    fprintf(stderr, "lat: cannot find lat's Lua library (looked for lat/init.lua in %s); set LAT_LUA_DIR to "
                    "the folder that holds lat/\n", lua_dir[0] ? lua_dir : "../share/lat/lua and ../lua beside lat");
    return 1;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fputs("lat: cannot create the Lua state\n", stderr);
    return 1;
  }
  globalL = L;
  luaL_openlibs(L);
  close_on_exit(L);
  set_paths(L);
  register_cli(L);
  set_arg(L, argv, argc, script ? script : argc);
  int rc = 0;
  if (code) rc = dostring(L, "lat = require 'lat'", "=(lat)") || dostring(L, code, "=(-e)");
  if (!rc && script && is_subcommand(argv[script])) {
    /* lat merge ... / lat sweep ...: the subcommand and its words go to the Lua side */
    static const char run_subcommand[] = "return require('lat.experiment.command').main(...)";
    rc = report(L, luaL_loadbuffer(L, run_subcommand, sizeof run_subcommand - 1, "=(lat)"));
    if (!rc) {
      int n = argc - script;
      luaL_checkstack(L, n, "too many arguments");
      for (int i = script; i < argc; i++) lua_pushstring(L, argv[i]);
      rc = report(L, docall(L, n));
    }
  } else if (!rc && script) {
    rc = report(L, luaL_loadfile(L, argv[script]));
    if (!rc) {
      int n = argc - script - 1;
      luaL_checkstack(L, n, "too many arguments");
      for (int i = script + 1; i < argc; i++) lua_pushstring(L, argv[i]);
      rc = report(L, docall(L, n));
    }
  }
  if (!rc && (want_repl || (!code && !script))) {
    const char *h = history_path();
    if (interactive() && h) read_history(h);
    rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{(,+-*/^%[]#~";
    rl_attempted_completion_function = complete;
    rc = run_repl(L);
  }
  lua_close(L);
  return rc ? 1 : 0;
}

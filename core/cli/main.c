/* main.c: the lat command. The one piece of C that knows Lua: it embeds LuaJIT, puts the lat
 * library on its paths, and runs a script, a snippet or the REPL (lua/lat/tools/repl.lua), giving
 * the REPL line editing and history from libedit and Ctrl-C that interrupts a running command. */
#include "lat.h"
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
    "  -v, --version  print the version and exit\n"
    "  -h, --help   print this help and exit\n"
    "\n"
    "environment:\n"
    "  LAT_NUM_THREADS  threads for OpenBLAS and lat's own loops (default: all cores)\n"
    "  LAT_HISTORY      REPL history file (default: ~/.lat_history)\n";

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

static int traceback(lua_State *L) {
  if (!lua_isstring(L, 1)) {
    if (lua_isnoneornil(L, 1) || !luaL_callmeta(L, 1, "__tostring") || !lua_isstring(L, -1))
      return 1;
    lua_remove(L, 1);
  }
  luaL_traceback(L, L, lua_tostring(L, 1), 1);
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

static void set_paths(lua_State *L) {
  const char *dir = getenv("LAT_LUA_DIR");
  if (!dir) dir = LAT_LUA_DIR;
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", dir, dir);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  if (!getenv("LAT_LIBRARY")) setenv("LAT_LIBRARY", LAT_LIBRARY_PATH, 1);
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
  wait_passively(argv);
  const char *code = NULL;
  int script = 0, want_repl = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    } else if (!strcmp(a, "-v") || !strcmp(a, "--version")) {
      printf("lat %s (%s, liblat %s)\n", LAT_VERSION, LUAJIT_VERSION, lat_version());
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

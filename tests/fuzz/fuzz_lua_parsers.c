/* fuzz_lua_parsers.c: the Lua-side parsers of lat.data (listed in lua_parsers.lua), run in one
 * LuaJIT state with lat's Lua library from the source tree over the instrumented liblat. A Lua
 * error with a string message is the parser refusing bad bytes; any other error object is a
 * finding, and so is a crash or a hang (libFuzzer's -timeout).
 * LuaJIT itself is not instrumented, so libFuzzer would see no coverage of the Lua code: a line
 * hook counts (previous line, line) pairs of the Lua source into libFuzzer's extra counters. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum { N_COUNTERS = 1 << 16 };
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[N_COUNTERS];

static lua_State *L;
static int n_parsers;

static void on_line(lua_State *S, lua_Debug *ar) {
  static uintptr_t prev;
  lua_getinfo(S, "S", ar);
  uintptr_t here = (uintptr_t)ar->source * 2654435761u + (uintptr_t)ar->currentline * 40503u;
  lua_edges[(here ^ prev) % N_COUNTERS]++;
  prev = here >> 1; /* so that a -> b and b -> a count apart */
}

/* At exit, so that the finalisers free the tensors the Lua heap held: LeakSanitizer does not
 * scan the memory of LuaJIT's own allocator and would take them for leaks. For the same reason
 * libFuzzer's leak check after each input is off for this target (-detect_leaks=0, run.sh):
 * what the library keeps from one input to the next (cjson's buffer, cached tensors) is held
 * from the Lua heap only. */
static void close_state(void) { lua_close(L); }

static void die(const char *what) {
  fprintf(stderr, "fuzz_lua_parsers: %s: %s\n", what, lua_tostring(L, -1));
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  setenv("LAT_LIBRARY", LAT_LIBRARY_PATH, 1);
  L = luaL_newstate();
  luaL_openlibs(L);
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF); /* hooks do not run in traces */
  lua_getglobal(L, "package");
  lua_pushstring(L, LAT_LUA_DIR "/?.lua;" LAT_LUA_DIR "/?/init.lua;" LAT_FUZZ_DIR "/?.lua;");
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lua_parsers");
  if (lua_pcall(L, 1, 1, 0) != 0) die("loading lua_parsers.lua");
  n_parsers = (int)lua_objlen(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, "lat.fuzz.parsers");
  lua_sethook(L, on_line, LUA_MASKLINE, 0);
  atexit(close_state);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_getfield(L, LUA_REGISTRYINDEX, "lat.fuzz.parsers");
  int base = lua_gettop(L);
  for (int i = 1; i <= n_parsers; i++) {
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -1, 1);
    const char *name = lua_tostring(L, -1);
    lua_rawgeti(L, -2, 2);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 0) != 0 && lua_type(L, -1) != LUA_TSTRING) {
      const char *finding = "(not a string)";
      if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "finding");
        if (lua_isstring(L, -1)) finding = lua_tostring(L, -1);
      }
      fprintf(stderr, "fuzz_lua_parsers: %s raised a non-string error: %s\n", name, finding);
      abort();
    }
    lua_settop(L, base);
  }
  lua_pop(L, 1);
  return 0;
}

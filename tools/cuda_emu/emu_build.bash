# Sourced by run.sh, run_train.sh and run_projector.sh (needs HERE and ROOT):
#   emu_take_generated  copies gen.py's gen/*_emu.cpp into the current directory
#                       where their text changed (keeps the objects up to date);
#   EMU_FLAGS           the compile flags they share, SANFLAGS from $SAN;
#   emu_compile         the incremental, parallel compile of $SRCS with $FLAGS
#                       into obj/, at most ${JOBS:-nproc} compilers at once. Sets
#                       OBJS to the objects, in $SRCS order (sources under ROOT
#                       get obj/ names from their path). Empties obj/ first when
#                       $FLAGS differ from the ones recorded in ./flags.

emu_take_generated() {
  local f
  for f in gen/*_emu.cpp; do
    cmp -s "$f" "$(basename "$f")" || cp "$f" .
  done
}

SANFLAGS=""
[ -n "${SAN:-}" ] && SANFLAGS="-fsanitize=$SAN -fno-omit-frame-pointer"
# UBSan reports and goes on by default, so a misaligned vector access (a
# fault on a GPU: CUDA's int4/float4 are 16-byte aligned types here too)
# would pass as a warning in the log: stop at the first report instead.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
EMU_FLAGS="-std=c++20 -O1 -g $SANFLAGS -fopenmp -Wno-stringop-overflow -I$HERE -I$ROOT -I$ROOT/src
  -I/usr/local/cuda/include -DGALORE_WITH_CUDA=1 -DFMT_SHARED -DSPDLOG_COMPILED_LIB -DSPDLOG_FMT_EXTERNAL
  -DSPDLOG_SHARED_LIB -include $HERE/emu_runtime.h"

# Up to date: the object exists and is newer than its source and every header it included.
emu_fresh() {
  local o=$1 s=$2 d=${1%.o}.d
  [ -f "$o" ] && [ -f "$d" ] || return 1
  [ "$s" -nt "$o" ] && return 1
  for h in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
    [ "$h" -nt "$o" ] && return 1
  done
  return 0
}

emu_compile() {
  local jobs=${JOBS:-$(nproc)} pids=() s rel o p
  # Objects built with other flags (another SAN) must not be mixed in: obj/ is
  # emptied when FLAGS differ from the ones recorded in ./flags (a folder without
  # that record, from before it existed, is taken as built with these flags).
  if [ -f flags ] && [ "$(cat flags)" != "$FLAGS" ]; then rm -f obj/*.o obj/*.d; fi
  echo "$FLAGS" >flags
  OBJS=()
  for s in $SRCS; do
    rel=${s#"$ROOT"/}
    o=obj/$(echo "${rel%.cpp}" | tr '/' '_').o
    OBJS+=("$o")
    if ! emu_fresh "$o" "$s"; then
      g++ $FLAGS -MMD -c "$s" -o "$o" &
      pids+=($!)
      if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

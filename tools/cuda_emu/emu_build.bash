# Sourced by run_train.sh and run_projector.sh: the incremental, parallel
# compile of $SRCS with $FLAGS into obj/ (in the current directory), at most
# ${JOBS:-nproc} compilers at once. Sets OBJS to the objects, in $SRCS order.
# Needs ROOT (sources under it get obj/ names from their path).

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

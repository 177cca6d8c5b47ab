#!/bin/sh
# fleetcompat host probe: gathers the files Node Feature Discovery's worker reads.
#
# Read-only, POSIX sh, works with busybox or coreutils, needs no root and installs
# nothing. Run it by hand on a host you cannot reach:   sh probe.sh > host.probe
# and carry host.probe in with `fleetcompat import host.probe`.
#
# Environment:
#   FLEETCOMPAT_ROOT   read the host tree under this directory instead of /
#                      (a captured tree; every symlink on a path, absolute or
#                      relative, final or not, is followed inside it); set
#                      but not a directory, the probe exits 2 and says so
#   FLEETCOMPAT_MAX_SECONDS   stop gathering after this many seconds (default 60)
#
# Output, one record per path visited (paths escaped: \\ for \, \n for newline):
#   #fleetcompat-probe v1            first line
#   F <bytes> <path>                 file content follows: <bytes> bytes, then \n
#   T <bytes> <path>                 as F, cut at the per-file bound
#   Z <bytes> <path>                 gzip file, decompressed content follows
#   X <bytes> <path>                 binary file as od -An -tx1 prints it follows
#   D <count> <path>                 directory: <count> escaped names follow
#   L <path>                         symlink: one escaped target line follows
#   E <path>                         exists (only existence was asked)
#   A <path>                         absent
#   U <path>                         exists but cannot be read or listed: also a
#                                    path behind a directory that cannot be
#                                    searched, and a gzip file that does not
#                                    decompress whole or within MAXGZ bytes
#   #note <text>                     something the reader should know
#   #end <bytes>                     last line; <bytes> of records written before it

LC_ALL=C
export LC_ALL
R=${FLEETCOMPAT_ROOT:-}
R=${R%/}
# A root that is not a directory would read as a host with no files at all.
if [ -n "${FLEETCOMPAT_ROOT:-}" ] && ! [ -d "$FLEETCOMPAT_ROOT" ]; then
	printf 'fleetcompat probe: FLEETCOMPAT_ROOT %s: not a directory\n' "$FLEETCOMPAT_ROOT" >&2
	exit 2
fi
MAXFILE=1048576
# Gzip text bound, as fleetcompat.hosttree.MAX_GZIP_TEXT_BYTES: both refuse alike.
MAXGZ=4194304
MAXHOPS=40
# Files the shell reads itself, not with head, when they are no larger.
SMALL=4096
MAXTOTAL=16777216
TOTAL=0
STOPPED=
NL='
'
RDIR=$NL RAT= RHOPS=0 RS=ok
RDIR2=$NL RAT2= RHOPS2=0 RS2=ok
BI=1
BN=0
LIMIT=${FLEETCOMPAT_MAX_SECONDS:-60}
COUNT=0

clock() {
	# clock: sets NOW to whole seconds of a clock that only moves forward (0: none).
	# /proc/uptime is this machine's own, root prefix or not, and read without a
	# fork; date is the fallback where it cannot be read.
	if [ "$CLOCK" = uptime ]; then
		NOW=
		{ read -r NOW _ </proc/uptime; } 2>/dev/null
		NOW=${NOW%%.*}
	else
		NOW=$(date +%s 2>/dev/null || echo 0)
	fi
	case $NOW in '' | *[!0-9]*) NOW=0 ;; esac
}
CLOCK=uptime
clock
[ "$NOW" = 0 ] && CLOCK=date && clock
START=$NOW

emit() {
	# emit TEXT: write one chunk of output and count it against the total bound.
	TOTAL=$((TOTAL + ${#1} + 1))
	printf '%s\n' "$1"
}

esc() {
	# esc STRING: sets E to STRING with \ and newline escaped.
	case $1 in
	*\\* | *"$NL"*)
		# The x keeps trailing newlines, which awk and $(...) would drop.
		E=$(printf '%sx' "$1" | sed -e 's/\\/\\\\/g' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }')
		E=${E%x}
		;;
	*) E=$1 ;;
	esac
}

target() {
	# target PATH: sets T to the symlink PATH's target, trailing newlines kept.
	T=$(readlink "$1" 2>/dev/null && echo x) || return 1
	T=${T%x}
	T=${T%"$NL"}
}

walk() {
	# walk: follow the names in _rest from the resolved _at, inside the root.
	while [ "$S" = ok ] && [ -n "$_rest" ]; do
		case $_rest in
		*/*)
			_part=${_rest%%/*}
			_rest=${_rest#*/}
			;;
		*)
			_part=$_rest
			_rest=
			;;
		esac
		case $_part in
		'' | .) continue ;;
		..)
			_at=${_at%/*}
			continue
			;;
		esac
		if [ -L "$R$_at/$_part" ]; then
			_hops=$((_hops + 1))
			if [ "$_hops" -gt "$MAXHOPS" ] || ! target "$R$_at/$_part"; then
				S=A
				return 0
			fi
			case $T in /*) _at= ;; esac
			_rest=$T/$_rest
		elif [ -e "$R$_at/$_part" ]; then
			_at=$_at/$_part
		elif [ -d "$R$_at" ] && ! [ -e "$R$_at/." ]; then
			S=U
		else
			S=A
		fi
	done
}

unreached() {
	# unreached PATH: on a live host, for a PATH the kernel does not reach, sets S
	# as the walk would (U when the name that fails sits in a directory that
	# cannot be searched, else A) without reading a link; false when that name is
	# a symlink (broken, or a loop) or the path has . or .. names: walk those.
	case $1 in */./* | */../* | */. | */.. | *//*) return 1 ;; esac
	_up=$1
	while
		_last=$_up
		_up=${_up%/*}
		[ -n "$_up" ] && ! [ -e "$_up" ]
	do :; done
	[ -L "$_last" ] && return 1
	if [ -d "$_up" ] && ! [ -e "$_up/." ]; then S=U; else S=A; fi
	P=
	return 0
}

resolve() {
	# resolve PATH: sets P to PATH with its symlinks followed (inside the root,
	# as if it were /) and S to ok, A (absent) or U (behind a directory that
	# cannot be searched, so it may exist). The last two directories resolved
	# are remembered: a path below one of them is walked on from there.
	if [ -z "$R" ]; then
		if [ -e "$1" ]; then
			P=$1
			S=ok
			return 0
		fi
		unreached "$1" && return 0
	fi
	_d=${1%/*}
	if [ "$_d" != "$RDIR" ]; then
		if [ "${_d#"$RDIR"/}" != "$_d" ]; then
			_at=$RAT _hops=$RHOPS S=$RS _rest=${_d#"$RDIR"/}
			RDIR2=$RDIR RAT2=$RAT RHOPS2=$RHOPS RS2=$RS
		elif [ "${_d#"$RDIR2"/}" != "$_d" ]; then
			_at=$RAT2 _hops=$RHOPS2 S=$RS2 _rest=${_d#"$RDIR2"/}
		else
			RDIR2=$RDIR RAT2=$RAT RHOPS2=$RHOPS RS2=$RS
			_at= _hops=0 S=ok _rest=$_d
		fi
		walk
		RDIR=$_d RAT=$_at RHOPS=$_hops RS=$S
	fi
	_at=$RAT
	_hops=$RHOPS
	S=$RS
	_rest=${1##*/}
	walk
	P=$_at
}

over() {
	# over: true once the output or time budget is spent (checked every 200 paths).
	[ -n "$STOPPED" ] && return 0
	if [ "$TOTAL" -gt "$MAXTOTAL" ]; then
		STOPPED=1
		emit "#note output bound of $MAXTOTAL bytes reached; later paths not gathered"
		return 0
	fi
	COUNT=$((COUNT + 1))
	if [ $((COUNT % 200)) -eq 0 ] && [ "$START" != 0 ]; then
		clock
		if [ "$NOW" != 0 ] && [ $((NOW - START)) -gt "$LIMIT" ]; then
			STOPPED=1
			emit "#note time bound of $LIMIT s reached; later paths not gathered"
			return 0
		fi
	fi
	return 1
}

shellread() {
	# shellread FILE MAX: sets c to FILE's content as read by the shell's own read,
	# without a fork, trailing newlines kept; empty when FILE is empty, cannot be
	# read (an error reads as the end), or holds more than MAX or SMALL bytes:
	# then head decides. The shell reads byte by byte and a line whole, so this
	# is only for files the kernel keeps small: the attributes of /sys (at most a
	# page) and the string sysctls (an integer sysctl read that way gives its
	# first byte alone). False when FILE cannot be opened.
	_max=$2
	[ "$_max" -gt "$SMALL" ] && _max=$SMALL
	c=
	l=
	{
		while IFS= read -r l; do
			c=$c$l$NL
			l=
			if [ "${#c}" -gt "$_max" ]; then break; fi
		done
		c=$c$l
	} 2>/dev/null <"$1" || return 1
	if [ "${#c}" -gt "$_max" ]; then c=; fi
	return 0
}

batch() {
	# batch DIRPATH NAME...: on a live host, read NAME... below each entry of
	# DIRPATH (as each passes them) that the shell cannot read itself (the CPU
	# lists of /sys answer a one-byte read with nothing) with one head, for file
	# to take in that order: BN_i and BC_i, the i-th file's path and content, BN
	# of them, BI the next. Kept only when head read every file and its
	# "==> path <==" header lines are exactly one per file, in order.
	BI=1
	BN=0
	[ -z "$R" ] && isdir "$1" || return 0
	_dir=$1
	shift
	_names=$*
	set --
	for _p in "$_dir"/* "$_dir"/.[!.]* "$_dir"/..?*; do
		[ -e "$_p" ] || [ -L "$_p" ] || continue
		for _n in $_names; do
			_f=$_dir/${_p##*/}/$_n
			[ -f "$_f" ] && shellread "$_f" "$MAXFILE" && [ -z "$c" ] && set -- "$@" "$_f"
		done
	done
	# With one file head writes no header; a newline in a path breaks lines.
	[ "$#" -ge 2 ] || return 0
	for _f in "$@"; do
		case $_f in *"$NL"*) return 0 ;; esac
	done
	_out=$(head -c $((MAXFILE + 1)) "$@" 2>/dev/null; echo "x$?")
	case $_out in *x0) ;; *) return 0 ;; esac
	# Between two headers: the content, then the newline head writes before the
	# next header; the last content ends with the x0 added above.
	_i=0
	_c=
	while IFS= read -r _l; do
		case $_l in
		"==> "*" <==")
			[ "$#" -gt 0 ] && [ "$_l" = "==> $1 <==" ] || return 0
			if [ "$_i" -gt 0 ]; then eval "BC_$_i=\${_c%\"\$NL\"}"; fi
			_i=$((_i + 1))
			eval "BN_$_i=\$1"
			shift
			_c=
			;;
		*)
			[ "$_i" -gt 0 ] || return 0
			_c=$_c$_l$NL
			;;
		esac
	done <<EOF
$_out
EOF
	[ "$#" = 0 ] || return 0
	_c=${_c%"$NL"}
	eval "BC_$_i=\${_c%x0}"
	BN=$_i
}

batcheach() {
	# batcheach DIRPATH FUNC NAME...: each DIRPATH FUNC, the NAME... read by batch.
	_bd=$1
	_bfn=$2
	shift 2
	batch "$_bd" "$@"
	each "$_bd" "$_bfn"
	BN=0
}

file() {
	# file PATH [MAXBYTES]: record PATH's content, or why there is none; sets K
	# to the record's tag.
	K=
	over && return 0
	esc "$1"
	resolve "$1"
	f=$R$P
	max=${2:-$MAXFILE}
	if [ "$S" != ok ]; then
		K=$S
	elif [ -f "$f" ]; then
		c=
		# Only on a live host: a captured file is as large as it was written.
		if [ -z "$R" ]; then
			case $1 in
			/sys/* | /proc/sys/kernel/arch | /proc/sys/kernel/osrelease)
				if ! shellread "$f" "$max"; then
					emit "U $E"
					K=U
					return 0
				fi
				;;
			esac
			if [ -n "$c" ]; then
				K=F
				emit "$K ${#c} $E"
				emit "$c"
				return 0
			fi
		fi
		# The next file batch read, if this is it.
		if [ "$BI" -le "$BN" ] && [ "$max" = "$MAXFILE" ]; then
			eval "_bn=\$BN_$BI"
			if [ "$_bn" = "$f" ]; then
				eval "c=\$BC_$BI"
				c=${c}x
				BI=$((BI + 1))
			fi
		fi
		# The x keeps trailing newlines; one byte over the bound shows a cut.
		[ -n "$c" ] || c=$(head -c $((max + 1)) "$f" 2>/dev/null && echo x)
		case $c in
		*x)
			c=${c%x}
			K=F
			if [ "${#c}" -gt "$max" ]; then
				K=T
				c=${c%?}
			fi
			emit "$K ${#c} $E"
			emit "$c"
			return 0
			;;
		*) K=U ;;
		esac
	elif [ -e "$f" ]; then
		K=U
	else
		K=A
	fi
	emit "$K $E"
}

GZBAD="${NL}fleetcompat: gzip failed"

gzfile() {
	# gzfile PATH: record a gzip file's decompressed content; one that does not
	# decompress whole, or to more than MAXGZ bytes, is unreadable. Sets K.
	K=
	over && return 0
	esc "$1"
	resolve "$1"
	f=$R$P
	if [ "$S" != ok ]; then
		K=$S
	elif [ -f "$f" ]; then
		# Each pass stops one byte past the bound, so a gzip bomb costs no more.
		# The size is counted by wc, as the shell would drop NUL bytes.
		c=
		n=$(gzip -dc "$f" 2>/dev/null | head -c $((MAXGZ + 1)) | wc -c)
		[ $((n + 0)) -le "$MAXGZ" ] &&
			c=$({ gzip -dc "$f" 2>/dev/null || printf '%s' "$GZBAD" 2>/dev/null; } |
				head -c $((MAXGZ + 1)) && echo x)
		K=U
		case $c in
		*"$GZBAD"x | '') ;;
		*)
			c=${c%x}
			emit "Z ${#c} $E"
			emit "$c"
			K=Z
			return 0
			;;
		esac
	elif [ -e "$f" ]; then
		K=U
	else
		K=A
	fi
	emit "$K $E"
}

hexfile() {
	# hexfile PATH: record a binary file as hex bytes (od), for /proc/self/auxv.
	over && return 0
	esc "$1"
	resolve "$1"
	f=$R$P
	if [ "$S" = ok ] && [ -f "$f" ] && c=$(od -An -v -tx1 "$f" 2>/dev/null && echo x); then
		case $c in
		*x)
			c=${c%x}
			emit "X ${#c} $E"
			emit "$c"
			return 0
			;;
		esac
	fi
	if [ "$S" = ok ] && ! [ -e "$f" ]; then S=A; fi
	[ "$S" = A ] || S=U
	emit "$S $E"
}

exists() {
	# exists PATH: record only whether the path exists (U: it may, unreachable).
	over && return 0
	esc "$1"
	resolve "$1"
	if [ "$S" = ok ]; then emit "E $E"; else emit "$S $E"; fi
}

there() {
	# there PATH: true unless PATH is known to be absent (as HostTree.exists).
	resolve "$1"
	[ "$S" != A ]
}

link() {
	# link PATH: record a symlink's target, if the path is one.
	over && return 0
	resolve "${1%/*}"
	[ "$S" = ok ] || return 0
	if [ -L "$R$P/${1##*/}" ] && target "$R$P/${1##*/}"; then
		esc "$1"
		emit "L $E"
		esc "$T"
		emit "$E"
	fi
}

dir() {
	# dir PATH: record a directory's entry names.
	over && return 0
	esc "$1"
	resolve "$1"
	d=$R$P
	if [ "$S" != ok ]; then
		emit "$S $E"
		return 0
	fi
	if [ ! -d "$d" ] || [ ! -r "$d" ] || ! [ -e "$d/." ]; then
		emit "U $E"
		return 0
	fi
	here=$E
	n=0
	names=
	for p in "$d"/* "$d"/.[!.]* "$d"/..?*; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		n=$((n + 1))
		esc "${p##*/}"
		names=$names$E$NL
	done
	emit "D $n $here"
	[ "$n" -gt 0 ] && printf '%s' "$names" && TOTAL=$((TOTAL + ${#names}))
	return 0
}

isdir() {
	# isdir PATH: true when PATH is a directory (symlinks followed in the root).
	resolve "$1"
	[ "$S" = ok ] && [ -d "$R$P" ]
}

each() {
	# each DIRPATH FUNC: call FUNC with the host path of every entry of DIRPATH.
	isdir "$1" || return 0
	for _p in "$R$P"/* "$R$P"/.[!.]* "$R$P"/..?*; do
		[ -e "$_p" ] || [ -L "$_p" ] || continue
		"$2" "$1/${_p##*/}"
	done
}

# First line: the format and what produced it.
printf '#fleetcompat-probe v1\n'
TOTAL=22
[ -n "$R" ] && emit "#note root prefix in use"

# cpu: /proc/cpuinfo stands in for the CPUID instruction and the auxiliary vector.
file /proc/cpuinfo
file /proc/sysinfo
# The auxiliary vector (of the od reading it) holds the HWCAP bits NFD reads on
# arm, arm64, ppc64le and s390x; a captured root has no live one.
[ -n "$R" ] || hexfile /proc/self/auxv
file /proc/sys/kernel/arch
file /sys/hypervisor/type
file /sys/devices/cpu_atom/cpus
file /sys/devices/cpu_core/cpus
exists /sys/devices/system/cpu
dir /sys/devices/system/cpu/cpuidle
file /sys/devices/system/cpu/cpuidle/current_driver
file /sys/module/intel_idle/parameters/max_cstate
dir /sys/devices/system/cpu/intel_pstate
file /sys/devices/system/cpu/intel_pstate/status
file /sys/devices/system/cpu/intel_pstate/no_turbo
policy() {
	file "$1/affected_cpus"
	file "$1/scaling_governor"
}
dir /sys/devices/system/cpu/cpufreq
batcheach /sys/devices/system/cpu/cpufreq policy affected_cpus scaling_governor
file /sys/fs/resctrl/info/L3/num_closids
file /sys/module/kvm_intel/parameters/tdx
file /sys/module/kvm_amd/parameters/sev
file /sys/module/kvm_amd/parameters/sev_es
file /sys/module/kvm_amd/parameters/sev_snp
file /sys/fs/cgroup/misc.capacity
file /sys/fs/cgroup/misc/misc.capacity
file /sys/firmware/uv/prot_virt_host
exists /sys/devices/vio/ibm,compression-v1/nx_gzip_caps
cpu() {
	file "$1/topology/thread_siblings_list"
	file "$1/topology/physical_package_id"
	file "$1/cpufreq/base_frequency"
}
dir /sys/bus/cpu/devices
batcheach /sys/bus/cpu/devices cpu topology/thread_siblings_list \
	topology/physical_package_id cpufreq/base_frequency

# kernel: the release names the config and module files to read.
file /proc/sys/kernel/osrelease
KVER=
resolve /proc/sys/kernel/osrelease
[ "$S" = ok ] && [ -f "$R$P" ] && read -r KVER <"$R$P"
# White space (the [:space:] class: blank, tab, CR, LF, VT, FF) off both ends.
while :; do
	case $KVER in
	[[:space:]]*) KVER=${KVER#?} ;;
	*[[:space:]]) KVER=${KVER%?} ;;
	*) break ;;
	esac
done
kconfig() {
	# kconfig PATH: record the candidate; true once a readable one is found.
	case $1 in
	*.gz) gzfile "$1" ;;
	*) file "$1" ;;
	esac
	case $K in F | T | Z) return 0 ;; *) return 1 ;; esac
}
if [ -n "$KVER" ]; then
	kconfig /proc/config.gz ||
		kconfig "/usr/src/linux-$KVER/.config" ||
		kconfig "/usr/src/linux-rt-$KVER/.config" ||
		kconfig /usr/src/linux/.config ||
		kconfig "/usr/lib/modules/$KVER/config" ||
		kconfig "/usr/lib/ostree-boot/config-$KVER" ||
		kconfig "/usr/lib/kernel/config-$KVER" ||
		kconfig "/usr/src/linux-headers-$KVER/.config" ||
		kconfig "/lib/modules/$KVER/build/.config" ||
		kconfig "/usr/src/linux-rt-headers-$KVER/.config" ||
		kconfig "/boot/config-$KVER"
	file "/lib/modules/$KVER/modules.builtin"
else
	kconfig /proc/config.gz || kconfig /usr/src/linux/.config
fi
file /proc/modules
exists /sys/fs
file /sys/fs/selinux/enforce
exists /sys/devices/virtual/misc/kvm

# memory
dir /sys/bus/node/devices
file /proc/swaps
nd() {
	file "$1/devtype"
	file "$1/mode"
}
dir /sys/bus/nd/devices
batcheach /sys/bus/nd/devices nd devtype mode
hugepages() {
	dir "$1"
	isdir "$1" && file "$1/nr_hugepages"
}
dir /sys/kernel/mm/hugepages
batcheach /sys/kernel/mm/hugepages hugepages nr_hugepages

# network
iface() {
	exists "$1/device"
	file "$1/operstate"
	file "$1/speed"
	file "$1/mtu"
	there "$1/device" || return 0
	file "$1/device/sriov_numvfs"
	file "$1/device/sriov_totalvfs"
}
dir /sys/class/net
batcheach /sys/class/net iface operstate speed mtu device/sriov_numvfs \
	device/sriov_totalvfs

# pci: only the attributes NFD reads.
PCIATTRS="class vendor device subsystem_vendor subsystem_device sriov_totalvfs
	iommu_group/type iommu/intel-iommu/version"
pcidev() {
	for a in $PCIATTRS; do
		file "$1/$a"
	done
}
dir /sys/bus/pci/devices
batcheach /sys/bus/pci/devices pcidev $PCIATTRS

# usb
USBATTRS="idProduct idVendor bDeviceClass serial"
usbdev() {
	there "$1/idProduct" || return 0
	dir "$1"
	for a in $USBATTRS; do
		file "$1/$a"
	done
	each "$1" usbif
}
usbif() {
	there "$1/bInterfaceClass" && file "$1/bInterfaceClass"
}
dir /sys/bus/usb/devices
batcheach /sys/bus/usb/devices usbdev $USBATTRS

# storage
BLOCKATTRS="queue/dax queue/rotational queue/nr_zones queue/zoned"
blockdev() {
	for a in $BLOCKATTRS; do
		file "$1/$a"
	done
}
dir /sys/block
batcheach /sys/block blockdev $BLOCKATTRS

# system
link /etc/os-release
file /etc/os-release
for a in bios_date bios_vendor bios_version board_asset_tag board_name board_vendor \
	board_version chassis_asset_tag chassis_type chassis_vendor chassis_version \
	product_family product_name product_sku product_version sys_vendor; do
	file "/sys/devices/virtual/dmi/id/$a"
done

# local: feature files; a file over 64 KiB is marked cut (NFD skips it).
featurefile() {
	case ${1##*/} in .*) return 0 ;; esac
	isdir "$1" && { dir "$1"; return 0; }
	if [ "$S" = ok ] && [ -f "$R$P" ] &&
		[ $(($(wc -c <"$R$P" 2>/dev/null || echo 0))) -gt 65536 ]; then
		esc "$1"
		emit "T 0 $E"
		emit ""
		return 0
	fi
	file "$1" 65537
}
dir /etc/kubernetes/node-feature-discovery/features.d
each /etc/kubernetes/node-feature-discovery/features.d featurefile

printf '#end %s\n' "$TOTAL"

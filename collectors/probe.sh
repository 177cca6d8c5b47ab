#!/bin/sh
# fleetcompat host probe: gathers the files Node Feature Discovery's worker reads.
#
# Read-only, POSIX sh, works with busybox or coreutils, needs no root and installs
# nothing. Run it by hand on a host you cannot reach:   sh probe.sh > host.probe
# and carry host.probe in with `fleetcompat import host.probe`.
#
# Environment:
#   FLEETCOMPAT_ROOT   read the host tree under this directory instead of /
#                      (a captured tree; absolute symlinks stay inside it)
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
#   U <path>                         exists but cannot be read or listed
#   #note <text>                     something the reader should know
#   #end <bytes>                     last line; <bytes> of records written before it

LC_ALL=C
export LC_ALL
R=${FLEETCOMPAT_ROOT:-}
R=${R%/}
MAXFILE=1048576
MAXTOTAL=16777216
TOTAL=0
STOPPED=
NL='
'
START=$(date +%s 2>/dev/null || echo 0)
LIMIT=${FLEETCOMPAT_MAX_SECONDS:-60}
COUNT=0

emit() {
	# emit TEXT: write one chunk of output and count it against the total bound.
	TOTAL=$((TOTAL + ${#1} + 1))
	printf '%s\n' "$1"
}

esc() {
	# esc STRING: sets E to STRING with \ and newline escaped.
	case $1 in
	*\\* | *"$NL"*)
		E=$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' | awk 'NR > 1 { printf "\\n" } { printf "%s", $0 }')
		;;
	*) E=$1 ;;
	esac
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
		NOW=$(date +%s 2>/dev/null || echo "$START")
		if [ $((NOW - START)) -gt "$LIMIT" ]; then
			STOPPED=1
			emit "#note time bound of $LIMIT s reached; later paths not gathered"
			return 0
		fi
	fi
	return 1
}

file() {
	# file PATH [MAXBYTES [SOURCE]]: record PATH's content (read from SOURCE if
	# given: PATH with its symlinks followed inside the root), or why there is none.
	over && return 0
	esc "$1"
	f=$R${3:-$1}
	max=${2:-$MAXFILE}
	if [ -f "$f" ]; then
		# The x keeps trailing newlines; one byte over the bound shows a cut.
		c=$(head -c $((max + 1)) "$f" 2>/dev/null && echo x)
		case $c in
		*x)
			c=${c%x}
			tag=F
			if [ "${#c}" -gt "$max" ]; then
				tag=T
				c=${c%?}
			fi
			emit "$tag ${#c} $E"
			emit "$c"
			;;
		*) emit "U $E" ;;
		esac
	elif [ -d "$f" ]; then
		emit "U $E"
	elif [ -e "$f" ]; then
		emit "U $E"
	else
		emit "A $E"
	fi
}

gzfile() {
	# gzfile PATH [SOURCE]: record a gzip file's decompressed content.
	over && return 0
	esc "$1"
	f=$R${2:-$1}
	if [ -f "$f" ] && gzip -dc "$f" >/dev/null 2>&1; then
		c=$(gzip -dc "$f" 2>/dev/null | head -c "$MAXFILE" && echo x)
		c=${c%x}
		emit "Z ${#c} $E"
		emit "$c"
	elif [ -f "$f" ]; then
		emit "U $E"
	elif [ -e "$f" ]; then
		emit "U $E"
	else
		emit "A $E"
	fi
}

hexfile() {
	# hexfile PATH: record a binary file as hex bytes (od), for /proc/self/auxv.
	over && return 0
	esc "$1"
	f=$R$1
	if [ -f "$f" ] && c=$(od -An -v -tx1 "$f" 2>/dev/null && echo x); then
		case $c in
		*x)
			c=${c%x}
			emit "X ${#c} $E"
			emit "$c"
			return 0
			;;
		esac
	fi
	if [ -e "$f" ]; then emit "U $E"; else emit "A $E"; fi
}

exists() {
	# exists PATH: record only whether the path exists.
	over && return 0
	esc "$1"
	if [ -e "$R$1" ]; then emit "E $E"; else emit "A $E"; fi
}

link() {
	# link PATH: record a symlink's target, if the path is one.
	over && return 0
	if [ -L "$R$1" ]; then
		t=$(readlink "$R$1" 2>/dev/null) || return 0
		esc "$1"
		emit "L $E"
		esc "$t"
		emit "$E"
	fi
}

dir() {
	# dir PATH: record a directory's entry names.
	over && return 0
	esc "$1"
	d=$R$1
	if [ ! -e "$d" ]; then
		emit "A $E"
		return 0
	fi
	if [ ! -d "$d" ] || [ ! -r "$d" ] || [ ! -x "$d" ]; then
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

inroot() {
	# inroot PATH: sets P to PATH with final symlinks followed inside the root.
	P=$1
	[ -n "$R" ] || return 0
	i=0
	while [ -L "$R$P" ] && [ "$i" -lt 8 ]; do
		t=$(readlink "$R$P" 2>/dev/null) || return 0
		case $t in
		/*) P=$t ;;
		*) P=${P%/*}/$t ;;
		esac
		i=$((i + 1))
	done
}

each() {
	# each DIRPATH FUNC: call FUNC with the host path of every entry of DIRPATH.
	[ -d "$R$1" ] || return 0
	for _p in "$R$1"/* "$R$1"/.[!.]* "$R$1"/..?*; do
		[ -e "$_p" ] || [ -L "$_p" ] || continue
		"$2" "${_p#"$R"}"
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
each /sys/devices/system/cpu/cpufreq policy
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
each /sys/bus/cpu/devices cpu

# kernel: the release names the config and module files to read.
file /proc/sys/kernel/osrelease
KVER=
[ -f "$R/proc/sys/kernel/osrelease" ] && read -r KVER <"$R/proc/sys/kernel/osrelease"
KVER=$(printf '%s' "$KVER" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
kconfig() {
	# kconfig PATH: record the candidate; true once a readable one is found.
	inroot "$1"
	case $1 in
	*.gz) gzfile "$1" "$P" ;;
	*) file "$1" "" "$P" ;;
	esac
	[ -f "$R$P" ] && [ -r "$R$P" ] && case $1 in
	*.gz) gzip -dc "$R$P" >/dev/null 2>&1 ;;
	*) : ;;
	esac
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
	inroot "/lib/modules/$KVER/modules.builtin"
	file "/lib/modules/$KVER/modules.builtin" "" "$P"
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
each /sys/bus/nd/devices nd
hugepages() {
	dir "$1"
	[ -d "$R$1" ] && file "$1/nr_hugepages"
}
dir /sys/kernel/mm/hugepages
each /sys/kernel/mm/hugepages hugepages

# network
iface() {
	exists "$1/device"
	file "$1/operstate"
	file "$1/speed"
	file "$1/mtu"
	[ -e "$R$1/device" ] || return 0
	file "$1/device/sriov_numvfs"
	file "$1/device/sriov_totalvfs"
}
dir /sys/class/net
each /sys/class/net iface

# pci: only the attributes NFD reads.
pcidev() {
	for a in class vendor device subsystem_vendor subsystem_device sriov_totalvfs \
		iommu_group/type iommu/intel-iommu/version; do
		file "$1/$a"
	done
}
dir /sys/bus/pci/devices
each /sys/bus/pci/devices pcidev

# usb
usbdev() {
	[ -e "$R$1/idProduct" ] || return 0
	dir "$1"
	for a in idProduct idVendor bDeviceClass serial; do
		file "$1/$a"
	done
	for i in "$R$1"/*/bInterfaceClass; do
		[ -e "$i" ] && file "${i#"$R"}"
	done
}
dir /sys/bus/usb/devices
each /sys/bus/usb/devices usbdev

# storage
blockdev() {
	for a in dax rotational nr_zones zoned; do
		file "$1/queue/$a"
	done
}
dir /sys/block
each /sys/block blockdev

# system
link /etc/os-release
inroot /etc/os-release
file /etc/os-release "" "$P"
for a in bios_date bios_vendor bios_version board_asset_tag board_name board_vendor \
	board_version chassis_asset_tag chassis_type chassis_vendor chassis_version \
	product_family product_name product_sku product_version sys_vendor; do
	file "/sys/devices/virtual/dmi/id/$a"
done

# local: feature files; a file over 64 KiB is marked cut (NFD skips it).
featurefile() {
	case ${1##*/} in .*) return 0 ;; esac
	inroot "$1"
	[ -d "$R$P" ] && { dir "$1"; return 0; }
	if [ -f "$R$P" ] && [ $(($(wc -c <"$R$P" 2>/dev/null || echo 0))) -gt 65536 ]; then
		esc "$1"
		emit "T 0 $E"
		emit ""
		return 0
	fi
	file "$1" 65537 "$P"
}
dir /etc/kubernetes/node-feature-discovery/features.d
each /etc/kubernetes/node-feature-discovery/features.d featurefile

printf '#end %s\n' "$TOTAL"

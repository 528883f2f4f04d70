#!/usr/bin/env bash
# CI for the packages (run by .ci/run, as root, on a machine with only the Rust toolchain):
# builds the native deb and rpm of both programs, checks their contents and lintian, installs
# the debs, runs `nines-agent check-config` as the package's user, checks the installed systemd
# units (`systemd-analyze verify`, and `security` exposure at most 2.0 for the agent and 3.0
# for the aggregator), then removes and purges and checks what is left.
#
# It changes the machine it runs on (packages, users): run it where that is wanted.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "packaging/ci.sh: FAILED: $*" >&2
    exit 1
}

# dpkg and apt take a lock; something else may hold it for a while.
dpkg_retry() {
    local _
    for _ in $(seq 60); do
        if "$@"; then
            return 0
        fi
        if ! fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock >/dev/null 2>&1; then
            return 1
        fi
        sleep 5
    done
    return 1
}

echo "== tools"
need=()
command -v rpm >/dev/null || need+=(rpm)
command -v lintian >/dev/null || need+=(lintian)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v fuser >/dev/null || need+=(psmisc)
command -v adduser >/dev/null || need+=(adduser)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    dpkg_retry apt-get -o DPkg::Lock::Timeout=300 update -qq
    dpkg_retry apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}"
fi
if ! command -v cargo-deb >/dev/null || ! command -v cargo-generate-rpm >/dev/null; then
    cargo install --locked cargo-deb cargo-generate-rpm
fi

echo "== build"
packaging/build.sh --native-only
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
deb_agent=target/packages/nines-agent_${version}-1_amd64.deb
deb_agg=target/packages/nines-aggregator_${version}-1_amd64.deb
rpm_agent=target/packages/nines-agent-${version}-1.x86_64.rpm
rpm_agg=target/packages/nines-aggregator-${version}-1.x86_64.rpm
for f in "$deb_agent" "$deb_agg" "$rpm_agent" "$rpm_agg"; do
    [ -f "$f" ] || fail "$f was not built"
done

echo "== contents"
# expect LISTING PATH...: every PATH is a line of LISTING.
expect() {
    local listing=$1 p
    shift
    for p in "$@"; do
        grep -qxF "$p" <<<"$listing" || fail "$p missing from the package"
    done
}
agent_files=(/usr/bin/nines-agent /etc/nines/agent.toml /usr/share/man/man1/nines-agent.1.gz
    /usr/share/man/man1/nines-agent-run.1.gz /usr/share/bash-completion/completions/nines-agent
    /usr/share/fish/vendor_completions.d/nines-agent.fish)
agg_files=(/usr/bin/nines-aggregator /etc/nines/aggregator.toml
    /usr/share/man/man1/nines-aggregator.1.gz /usr/share/man/man1/nines-aggregator-serve.1.gz
    /usr/share/bash-completion/completions/nines-aggregator
    /usr/share/fish/vendor_completions.d/nines-aggregator.fish)
deb_list() { dpkg-deb --contents "$1" | awk '{print $6}' | sed 's|^\./|/|; s|/$||'; }
# Captured first: with pipefail, `grep -q` closing the pipe early would fail the writer.
info=$(dpkg-deb --info "$deb_agent")
echo "$info"
grep -q '^ Depends:.*adduser' <<<"$info" || fail "agent deb: no Depends on adduser"
expect "$(deb_list "$deb_agent")" "${agent_files[@]}" /usr/share/zsh/vendor-completions/_nines-agent
expect "$(deb_list "$deb_agent")" /usr/lib/systemd/system/nines-agent.service
expect "$(dpkg-deb --info "$deb_agent" conffiles)" /etc/nines/agent.toml
expect "$(deb_list "$deb_agg")" "${agg_files[@]}" /usr/share/zsh/vendor-completions/_nines-aggregator \
    /usr/lib/systemd/system/nines-aggregator.service /usr/lib/systemd/system/nines-report.service \
    /usr/lib/systemd/system/nines-report.timer
expect "$(dpkg-deb --info "$deb_agg" conffiles)" /etc/nines/aggregator.toml
rpm -qpi "$rpm_agent"
expect "$(rpm -qpl "$rpm_agent")" "${agent_files[@]}" /usr/share/zsh/site-functions/_nines-agent \
    /usr/lib/systemd/system/nines-agent.service
expect "$(rpm -qpl "$rpm_agg")" "${agg_files[@]}" /usr/share/zsh/site-functions/_nines-aggregator \
    /usr/lib/systemd/system/nines-aggregator.service
expect "$(rpm -qp --configfiles "$rpm_agent")" /etc/nines/agent.toml
expect "$(rpm -qp --configfiles "$rpm_agg")" /etc/nines/aggregator.toml
flags=$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_agent")
grep -qx 'cn /etc/nines/agent.toml' <<<"$flags" \
    || fail "agent rpm: /etc/nines/agent.toml is not %config(noreplace)"
scripts=$(rpm -qp --scripts "$rpm_agent")
grep -q 'useradd -r' <<<"$scripts" || fail "agent rpm: no user creation"

echo "== lintian"
# Errors fail; warnings are shown. Overrides, each with its reason: packaging/lintian/.
lintian --fail-on error --suppress-tags-from-file packaging/lintian/suppressed \
    "$deb_agent" "$deb_agg"

echo "== install"
for u in nines-agent nines-aggregator; do
    ! getent passwd "$u" >/dev/null || fail "user $u exists before installation"
done
dpkg_retry dpkg -i "$deb_agent" "$deb_agg"
for u in nines-agent nines-aggregator; do
    getent passwd "$u" >/dev/null || fail "no user $u"
    [ "$(stat -c %U:%G:%a "/var/lib/$u")" = "$u:$u:750" ] || fail "/var/lib/$u: $(stat -c %U:%G:%a "/var/lib/$u")"
done
out=$(runuser -u nines-agent -- nines-agent check-config /etc/nines/agent.toml)
echo "$out"
grep -q 'no certificates yet' <<<"$out" || fail "check-config says nothing of the missing certificates"
man -w nines-agent >/dev/null 2>&1 || [ -f /usr/share/man/man1/nines-agent.1.gz ] || fail "no man page"

echo "== systemd units"
units=(nines-agent.service nines-aggregator.service nines-report.service nines-report.timer)
for u in "${units[@]}"; do
    systemd-analyze verify "/usr/lib/systemd/system/$u"
done
exposure() {
    systemd-analyze security --offline=yes "/usr/lib/systemd/system/$1" \
        | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'
}
for pair in nines-agent.service:2.0 nines-aggregator.service:3.0 nines-report.service:3.0; do
    u=${pair%%:*} max=${pair#*:}
    e=$(exposure "$u")
    echo "$u: exposure $e (at most $max)"
    awk -v e="$e" -v m="$max" 'BEGIN { exit !(e != "" && e <= m) }' || fail "$u exposure $e > $max"
done

echo "== upgrade keeps a changed configuration"
echo '# changed by the operator' >>/etc/nines/agent.toml
dpkg_retry dpkg -i "$deb_agent"
grep -q 'changed by the operator' /etc/nines/agent.toml || fail "reinstalling replaced agent.toml"

echo "== remove keeps state, purge deletes it"
touch /var/lib/nines-agent/kept
dpkg_retry dpkg -r nines-agent
[ -f /var/lib/nines-agent/kept ] || fail "remove deleted /var/lib/nines-agent"
[ -f /etc/nines/agent.toml ] || fail "remove deleted /etc/nines/agent.toml"
getent passwd nines-agent >/dev/null || fail "remove deleted the user"
dpkg_retry dpkg --purge nines-agent nines-aggregator
left=()
for u in nines-agent nines-aggregator; do
    ! getent passwd "$u" >/dev/null || left+=("user $u")
    ! getent group "$u" >/dev/null || left+=("group $u")
    [ ! -e "/var/lib/$u" ] || left+=("/var/lib/$u")
    [ -z "$(dpkg-query -W -f='${Status}' "$u" 2>/dev/null)" ] || left+=("dpkg status of $u")
done
[ ! -e /etc/nines ] || left+=("/etc/nines: $(find /etc/nines | tr '\n' ' ')")
# Every file the packages shipped (directories such as /usr/share/man/man1 are shared), and
# their own directories.
for f in $(deb_list "$deb_agent") $(deb_list "$deb_agg"); do
    [ -d "$f" ] && [ ! -L "$f" ] && continue
    [ ! -e "$f" ] || left+=("$f")
done
for d in /usr/share/doc/nines-agent /usr/share/doc/nines-aggregator; do
    [ ! -e "$d" ] || left+=("$d")
done
while IFS= read -r f; do left+=("$f"); done < <(find /etc/systemd/system -name 'nines-*' 2>/dev/null)
[ ${#left[@]} -eq 0 ] || fail "left after purge: ${left[*]}"
echo "== packages ok"
ls -l target/packages/

# Shared by the .deb postinst and the .rpm %pre (inlined at build time).
# The group is also the socket's group: agents join it to connect. The daemon's
# files, and the backend credential files an operator adds, belong to the user
# alone (0600/0400, 0700), so membership grants nothing else.
if ! getent group sealcache >/dev/null; then
	groupadd --system sealcache
fi
if ! getent passwd sealcache >/dev/null; then
	useradd --system --gid sealcache --home-dir /var/lib/sealcache --no-create-home \
		--shell /usr/sbin/nologin --comment "sealcache secret cache" sealcache
fi
# /dev/tpmrm0 is root:tss 0660 (tpm-udev); without tss the daemon cannot open the TPM.
if getent group tss >/dev/null; then
	usermod --append --groups tss sealcache
fi

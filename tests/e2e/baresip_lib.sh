# shellcheck shell=bash
# A headless loopback baresip for the e2e tests, sourced after lib.sh (which sets HOST).
#
# baresip_conf DIR SIP_PORT CTRL_PORT RTP_LO RTP_HI TONE_HZ ACCOUNT_LINE [EXTRA_LINE...]
#   writes DIR/config, DIR/accounts and DIR/contacts: the "microphone" is a sine tone (ausine, 48 kHz only), the
#   speaker nothing (aubridge), sndfile dumps what is sent and received into DIR/snd, ctrl_tcp listens on
#   CTRL_PORT for tests/e2e/baresip_ctrl.py. EXTRA_LINEs (e.g. "sip_cafile<TAB>FILE", "module<TAB>srtp.so") are
#   appended to the config. BARESIP_CTRL_HOST (default HOST) is the address ctrl_tcp listens on (127.0.0.1 for a
#   phone in its own network namespace, driven through that namespace's loopback).
baresip_conf() {
  local dir=$1 sport=$2 cport=$3 rlo=$4 rhi=$5 hz=$6 acc=$7
  shift 7
  mkdir -p "$dir/snd"
  {
    cat <<CONF
poll_method		epoll
sip_listen		$HOST:$sport
call_local_timeout	30
call_max_calls		4
audio_player		aubridge,null$sport
audio_source		ausine,$hz
audio_alert		aubridge,null$sport
ausrc_srate		48000
auplay_srate		48000
ausrc_channels		2
auplay_channels		1
audio_level		no
rtp_ports		$rlo-$rhi
rtp_timeout		0
rtcp_mux		no
jitter_buffer_delay	5-10
net_interface		$HOST
dns_server		$HOST:53
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			sndfile.so
CONF
    local line
    for line in "$@"; do
      case $line in module*) printf '%s\n' "$line" ;; esac
    done
    cat <<CONF
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
statmode_default	off
ctrl_tcp_listen		${BARESIP_CTRL_HOST:-$HOST}:$cport
snd_path		$dir/snd
CONF
    for line in "$@"; do
      case $line in module*) ;; *) printf '%s\n' "$line" ;; esac
    done
  } >"$dir/config"
  printf '%s\n' "$acc" >"$dir/accounts"
  : >"$dir/contacts"
}

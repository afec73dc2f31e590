//! Voicemail media micro-benchmarks: what a voicemail session does for every 20 ms frame, per direction.
//!
//! Run with `cargo bench -p palisade-media --bench voicemail`.
//!
//! Out: 160 samples of a prompt encoded to G.711 and wrapped in an RTP header (`play_frame/*`). In: an RTP
//! packet parsed and its payload decoded into the recording (`record_frame/*`), and an RFC 4733 event packet
//! through the DTMF receiver (`dtmf_event`). The whole-system cost (sockets, timers, the relay in front) is
//! measured by `benches/voicemail/run.sh`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use media::dtmf::DtmfReceiver;
use media::g711::Law;
use media::packetizer::{FRAME_SAMPLES, RtpSender};
use media::prompts::Prompt;
use media::rtp::RtpPacket;

fn bench(c: &mut Criterion) {
    let prompt = Prompt::GreetingDefault.samples();
    let frame: Vec<i16> = prompt.iter().copied().cycle().take(FRAME_SAMPLES).collect();
    for law in [Law::Mu, Law::A] {
        let mut g = c.benchmark_group("play_frame");
        g.throughput(Throughput::Elements(1));
        let mut sender = RtpSender::new(law.payload_type(), 0x1234_5678, 1, 1);
        g.bench_function(law.encoding_name(), |b| {
            b.iter(|| {
                let payload = law.encode_all(black_box(&frame));
                black_box(sender.packet(&payload, FRAME_SAMPLES as u32, false))
            })
        });
        g.finish();

        let mut g = c.benchmark_group("record_frame");
        g.throughput(Throughput::Elements(1));
        let packet = RtpSender::new(law.payload_type(), 1, 1, 1).packet(
            &law.encode_all(&frame),
            FRAME_SAMPLES as u32,
            false,
        );
        let mut recording: Vec<i16> = Vec::with_capacity(8000 * 120);
        g.bench_function(law.encoding_name(), |b| {
            b.iter(|| {
                if recording.len() > 8000 * 100 {
                    recording.clear();
                }
                if let Ok(p) = RtpPacket::parse(black_box(&packet)) {
                    recording.extend(law.decode_all(p.payload()));
                }
            })
        });
        g.finish();
    }
    let mut rx = DtmfReceiver::new();
    let mut ts = 0u32;
    c.bench_function("dtmf_event", |b| {
        b.iter(|| {
            ts = ts.wrapping_add(160);
            // digit 5, end bit, volume 10, duration 800
            black_box(rx.on_packet(ts, black_box(&[5, 0x8a, 0x03, 0x20])))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

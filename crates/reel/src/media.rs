//! The media loop: the one UDP socket, driving `reel_whip::Ingest` and handing what it
//! produces to the capture thread (frames) and the recorder (tracks). It runs on its own
//! thread with its own single-threaded runtime, so HTTP load can never delay a packet.

use crate::addresses;
use reel_core::{Codec, PublicationId, TrackId};
use reel_db::{now_ms, Track};
use reel_media::journal::{JournalHeader, Record};
use reel_recorder::capture::CaptureCommand;
use reel_recorder::{MediaCommand, PublicationContext, Recorder};
use reel_whip::{Ingest, IngestConfig, IngestEvent, IngestOutput};
use std::collections::HashMap;
use std::io::ErrorKind;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

/// Maps the monotonic clock to Unix time once, so arrival times in journals are all on
/// one steady timeline even if the system clock is stepped during a recording.
pub struct WallClock {
    instant: Instant,
    unix_us: i64,
}

impl WallClock {
    pub fn new() -> Self {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        WallClock {
            instant: Instant::now(),
            unix_us,
        }
    }
    pub fn unix_us(&self, t: Instant) -> i64 {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.unix_us + d.as_micros() as i64,
            None => self.unix_us - self.instant.duration_since(t).as_micros() as i64,
        }
    }
}

/// A track that produced its first frame.
pub struct OpenedTrack {
    pub track: TrackId,
    pub codec: Codec,
    pub clock_rate: u32,
    pub mid: String,
    pub rid: Option<String>,
}

/// Opens the track's journal in the capture thread and records the track, the same way
/// for a WebRTC publisher's track and a SIP call's stream.
pub fn open_track(
    recorder: &Recorder,
    ctx: &PublicationContext,
    t: OpenedTrack,
    created_unix_us: i64,
) {
    let path = ctx.journal_dir.join(format!("{}.rjnl", t.track));
    let kind = t.codec.kind();
    let header = JournalHeader {
        track_id: t.track.to_string(),
        publication_id: ctx.publication.to_string(),
        session_id: ctx.session.to_string(),
        room_id: ctx.room.to_string(),
        participant: ctx.participant.clone(),
        kind,
        codec: t.codec,
        clock_rate: t.clock_rate,
        mid: t.mid.clone(),
        rid: t.rid.clone(),
        created_unix_us,
    };
    recorder.capture().send(CaptureCommand::Open {
        publication: ctx.publication.clone(),
        track: t.track.clone(),
        path: path.clone(),
        header: Box::new(header),
    });
    tracing::info!(publication = %ctx.publication, track = %t.track, codec = t.codec.name(), "track opened");
    recorder.track_opened(Track {
        id: t.track.to_string(),
        publication_id: ctx.publication.to_string(),
        session_id: ctx.session.to_string(),
        mid: t.mid,
        rid: t.rid,
        media_kind: kind,
        codec: t.codec,
        clock_rate: t.clock_rate as i64,
        journal_path: path.to_string_lossy().into_owned(),
        started_at: now_ms(),
    });
}

pub struct MediaLoop {
    pub socket: std::net::UdpSocket,
    pub addresses: crate::addresses::MediaAddresses,
    pub ingest: IngestConfig,
    pub commands: UnboundedReceiver<MediaCommand>,
    pub recorder: Recorder,
}

impl MediaLoop {
    pub fn spawn(self) -> std::thread::JoinHandle<()> {
        std::thread::Builder::new()
            .name("reel-media".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("media runtime");
                rt.block_on(self.run());
            })
            .expect("spawn media thread")
    }

    async fn run(mut self) {
        self.socket
            .set_nonblocking(true)
            .expect("nonblocking socket");
        let socket = UdpSocket::from_std(self.socket.try_clone().expect("clone socket"))
            .expect("tokio socket");
        let mut ingest = Ingest::new(self.ingest.clone());
        let mut contexts: HashMap<PublicationId, PublicationContext> = HashMap::new();
        let clock = WallClock::new();
        let mut buf = vec![0u8; 2048];
        loop {
            let timeout = loop {
                match ingest.poll_output() {
                    IngestOutput::Transmit {
                        source,
                        destination,
                        contents,
                    } => {
                        // Loss on send is like loss on the wire; RTP and ICE recover.
                        if self.addresses.per_datagram {
                            let _ =
                                addresses::send_from(&socket, &contents, source.ip(), destination);
                        } else {
                            let _ = socket.try_send_to(&contents, destination);
                        }
                    }
                    IngestOutput::Event(e) => self.handle_event(e, &mut contexts, &clock),
                    IngestOutput::Timeout(t) => break t,
                }
            };
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    None => return,
                    Some(MediaCommand::Offer { publication, offerer, sdp, reply }) => {
                        let _ = reply.send(ingest.accept_offer(Instant::now(), publication, &offerer, &sdp));
                    }
                    Some(MediaCommand::Attach { ctx }) => {
                        if ingest.has_publication(&ctx.publication) {
                            contexts.insert(ctx.publication.clone(), ctx);
                        } else {
                            // Gone while it joined (it never connected): end it like any other.
                            self.recorder.capture().send(CaptureCommand::Finish {
                                publication: ctx.publication,
                                reason: reel_core::EndReason::Disconnected,
                            });
                        }
                    }
                    Some(MediaCommand::Close { publication, reason }) => {
                        ingest.close(Instant::now(), &publication, reason);
                    }
                    Some(MediaCommand::RequestKeyframes { publication }) => {
                        ingest.request_keyframes(Instant::now(), &publication);
                    }
                },
                r = socket.readable() => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "media socket");
                    }
                    // Drain what is queued (up to a bound) before polling timers again.
                    for _ in 0..64 {
                        // Through try_io, so that a drained socket clears tokio's readiness.
                        let received = if self.addresses.per_datagram {
                            socket.try_io(tokio::io::Interest::READABLE, || {
                                addresses::recv_with_destination(&socket, &mut buf)
                            })
                        } else {
                            socket.try_recv_from(&mut buf).map(|(n, source)| (n, source, None))
                        };
                        match received {
                            Ok((n, source, to)) => {
                                let destination = self.addresses.destination(to);
                                ingest.handle_receive(Instant::now(), source, destination, &buf[..n]);
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "media socket receive");
                                break;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(timeout.into()) => {}
            }
            ingest.handle_timeout(Instant::now());
        }
    }

    fn handle_event(
        &self,
        event: IngestEvent,
        contexts: &mut HashMap<PublicationId, PublicationContext>,
        clock: &WallClock,
    ) {
        let capture = self.recorder.capture();
        match event {
            IngestEvent::Connected { publication } => {
                tracing::info!(%publication, "publisher connected")
            }
            IngestEvent::TrackOpened {
                publication,
                track,
                mid,
                rid,
                kind: _,
                codec,
                clock_rate,
            } => {
                let Some(ctx) = contexts.get(&publication) else {
                    return;
                };
                let opened = OpenedTrack {
                    track,
                    codec,
                    clock_rate,
                    mid,
                    rid,
                };
                open_track(&self.recorder, ctx, opened, clock.unix_us(Instant::now()));
            }
            IngestEvent::Frame {
                publication,
                track,
                rtp_time,
                arrival,
                flags,
                data,
            } => {
                let record = Record::Frame {
                    rtp_time,
                    arrival_unix_us: clock.unix_us(arrival),
                    flags,
                    data: data.to_vec(),
                };
                capture.send(CaptureCommand::Append {
                    publication,
                    track,
                    record,
                });
            }
            IngestEvent::SenderReport {
                publication,
                track,
                rtp_time,
                ntp_unix_us,
            } => {
                capture.send(CaptureCommand::Append {
                    publication,
                    track,
                    record: Record::SenderReport {
                        rtp_time,
                        ntp_unix_us,
                    },
                });
            }
            IngestEvent::Closed {
                publication,
                reason,
                cause,
            } => {
                // One line naming the cause when Reel gave up on a publisher: the operator's
                // first question when a recording is missing.
                match &cause {
                    Some(cause) => {
                        tracing::warn!(%publication, reason = reason.as_str(), %cause, "publisher gone")
                    }
                    None => {
                        tracing::info!(%publication, reason = reason.as_str(), "publisher gone")
                    }
                }
                if contexts.remove(&publication).is_some() {
                    capture.send(CaptureCommand::Finish {
                        publication,
                        reason,
                    });
                }
            }
        }
    }
}

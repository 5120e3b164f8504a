//! A replica's communicator on its own thread, so that collectives run
//! while the training thread computes (the overlapped exchange).
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use super::Communicator;
use crate::error::{Error, Result};

pub(super) enum Request {
    AllReduce(Vec<f32>),
    Broadcast(Vec<f32>, usize),
}

/// Requests go in order and answers come back in the same order.
pub(super) struct ExchangeThread {
    requests: Option<Sender<Request>>,
    answers: Receiver<Result<Vec<f32>>>,
    handle: Option<JoinHandle<()>>,
}

impl ExchangeThread {
    pub(super) fn start(mut comm: Box<dyn Communicator>) -> Result<ExchangeThread> {
        let rank = comm.rank();
        let (requests, inbox) = channel::<Request>();
        let (reply, answers) = channel();
        let handle = std::thread::Builder::new()
            .name(format!("exchange-{rank}"))
            .spawn(move || {
                for req in inbox {
                    let answer = match req {
                        Request::AllReduce(mut buf) => comm.all_reduce_sum(&mut buf).map(|_| buf),
                        Request::Broadcast(mut buf, root) => {
                            comm.broadcast(&mut buf, root).map(|_| buf)
                        }
                    };
                    let failed = answer.is_err();
                    if reply.send(answer).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| Error::Other(format!("cannot start the exchange thread: {e}")))?;
        Ok(ExchangeThread {
            requests: Some(requests),
            answers,
            handle: Some(handle),
        })
    }

    pub(super) fn send(&self, req: Request) -> Result<()> {
        self.requests
            .as_ref()
            .and_then(|r| r.send(req).ok())
            .ok_or_else(|| gone())
    }

    /// The answer to the oldest unanswered request.
    pub(super) fn receive(&self) -> Result<Vec<f32>> {
        self.answers.recv().map_err(|_| gone())?
    }

    /// Sends `req` and waits for its answer (nothing else may be pending).
    pub(super) fn call(&self, req: Request) -> Result<Vec<f32>> {
        self.send(req)?;
        self.receive()
    }
}

fn gone() -> Error {
    Error::Other("the gradient exchange thread stopped after an earlier error".into())
}

impl Drop for ExchangeThread {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

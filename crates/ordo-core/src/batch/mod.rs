//! Commands applied to a working set, the pure heart of the write path.
//!
//! The shell collects a batch of commands, asks the store to load (and lock) the
//! rows they touch into a [`WorkingSet`] (see [`LoadRequest`]), applies every command
//! here in order, then persists [`Changes`] and the events in one transaction.
//! Each command applies completely or not at all: a failing command leaves the
//! working set as it found it, so one bad command never fails its batch.

mod codes;
mod commands;
mod edits;
mod intake;
mod orders;
mod payments;
mod shipping;
mod stock;
mod working_set;

pub use codes::{LOW_POOL_DEFAULT, pool_counter};
pub use commands::*;
pub use working_set::*;

use crate::Timestamp;

/// New identifiers, handed in by the shell (time-ordered, unique).
pub trait IdSource {
    fn next_id(&mut self) -> u128;
}

/// Everything a command may know about the world besides the working set.
pub struct Context<'a> {
    pub now: Timestamp,
    pub ids: &'a mut dyn IdSource,
}

/// Applies one command. On error the working set is unchanged.
/// Applies a batch's commands in order, one outcome each.
pub fn apply_all(
    ws: &mut WorkingSet,
    cmds: &[Command],
    ctx: &mut Context<'_>,
) -> Vec<Result<Outcome, crate::CommandError>> {
    // Room for the orders the batch may create, so the maps holding them are not
    // rehashed (moving every order) again and again as a big batch grows.
    let new_orders = cmds
        .iter()
        .filter(|c| {
            matches!(
                c,
                Command::PlaceOrder(_) | Command::ImportOrder(_) | Command::IntakeChannelOrder(_)
            )
        })
        .count();
    ws.reserve_new_orders(new_orders);
    cmds.iter().map(|c| apply(ws, c, ctx)).collect()
}

pub fn apply(ws: &mut WorkingSet, cmd: &Command, ctx: &mut Context<'_>) -> Result<Outcome, crate::CommandError> {
    match cmd {
        Command::PlaceOrder(c) => orders::place(ws, c, ctx),
        Command::ImportOrder(c) => orders::place_imported(ws, c, ctx),
        Command::IntakeChannelOrder(c) => intake::intake(ws, c, ctx),
        Command::EditOrder(e) => edits::edit(ws, e, ctx),
        Command::ShipTogether(s) => shipping::ship_together(ws, s, ctx),
        Command::PaymentNotice(n) => payments::notice(ws, n, ctx),
        Command::Refund(r) => payments::refund(ws, r, ctx),
        Command::ResolvePaymentException { order, accept, by } => {
            payments::resolve_exception(ws, by, *order, *accept, ctx)
        }
        Command::Transition { order, step, by } => orders::step(ws, by, *order, step, ctx),
        Command::ExpireUnpaid { shop, order } => orders::expire_unpaid(ws, *shop, *order, ctx),
        Command::RemindUnpaid { shop, order } => orders::remind_unpaid(ws, *shop, *order, ctx),
        Command::AdjustStock(a) => stock::adjust(ws, a, ctx),
        Command::ReschedulePresale(r) => shipping::reschedule_presale(ws, r, ctx),
    }
}

//! The `Valid` condition: whether the spec is semantically valid.

use super::builder::Builder;
use super::condition;
use super::transition::Transition;
use crate::api::TimelineType;
use crate::core::conditions::{get_condition, FALSE, TRUE};
use crate::core::validation::{self, FieldError};

/// `Valid` from the spec's field errors; a new error message goes on the
/// timeline once.
pub(super) fn validity(b: &mut Builder, errors: &[FieldError]) {
    if errors.is_empty() {
        b.cond(condition::VALID, TRUE, "Valid", "the spec is valid");
    } else {
        let message = validation::summarize(errors);
        let changed_message = get_condition(&b.status.conditions, condition::VALID)
            .is_none_or(|c| c.message != message);
        b.cond(condition::VALID, FALSE, "InvalidSpec", message.clone());
        if changed_message {
            b.timeline(TimelineType::Invalid, message.clone());
            b.transitions.push(Transition::Invalid { message });
        }
    }
}

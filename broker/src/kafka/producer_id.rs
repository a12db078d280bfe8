//! InitProducerId: a fresh producer id for an idempotent Kafka producer.
//!
//! YAK's duplicate detection keys on the producer id alone (it has no
//! producer epochs), so every call hands out a new random 63-bit id at
//! epoch 0: two producers colliding is as unlikely as two `yak-client`
//! producers picking the same id. Transactional ids are refused: YAK has
//! no transactions.

use kafka_protocol::{
    ResponseError,
    messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId},
};

use super::code;

pub fn handle(request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(code(ResponseError::TransactionalIdAuthorizationFailed))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    let id = (rand::random::<u64>() >> 1) as i64;
    InitProducerIdResponse::default()
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(0)
}
